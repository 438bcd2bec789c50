/* tests/gpu/gpu_main.c: the GPU test runner (make test-gpu). Runs the kernel,
 * attention and whole-model suites in CK_NOFORK mode (one process keeps one
 * CUDA context). Without a usable GPU it says why and exits 77 ("skipped"),
 * never pretending to pass. CK_RUN_SUITE / CK_RUN_CASE select as usual. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/cuda/cuda_backend.h"
#include "engine/log.h"
#include "tests/gpu/gpu_util.h"

int main(void)
{
    char desc[256];
    if (!eng_cuda_available(desc, sizeof desc)) {
        fprintf(stderr, "check_gpu: skipped: %s\n", desc);
        return 77;
    }
    printf("check_gpu on %s\n", desc);
    log_set_level(LOG_LVL_WARN);
    SRunner *sr = srunner_create(gpu_kernels_suite());
    srunner_add_suite(sr, gpu_attn_suite());
    srunner_add_suite(sr, gpu_chunk_suite());
    srunner_add_suite(sr, gpu_model_suite());
    srunner_add_suite(sr, gpu_sample_suite());
    srunner_add_suite(sr, gpu_spec_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
