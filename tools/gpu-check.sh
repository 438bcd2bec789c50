#!/bin/bash
# tools/gpu-check.sh: everything the CUDA backend needs on a GPU machine, in
# one go: build (sm_90 only, for speed), make test-gpu, a short
# compute-sanitizer memcheck, `deltaserve bench`, and FLA's kernels on the
# same shapes (tools/bench_fla.py, FLA copied into .scratch/fla).
# Logs are written to a scratch folder and packed after every step into one
# file, OUTDIR/gpu-logs.tgz (the device tool returns only a few files, and
# whatever a step leaves before a time-out still comes back). Used with the
# device tool; CI has no GPU and never runs this.
#   tools/gpu-check.sh OUTDIR [test|bench|spec|fla|memcheck|kernsan|serve|refs|
#                              chunk|prof|racecheck]...
#   (chunk: the gpu_chunk tests and the bench's chunk rows only; prof: Nsight
#   Compute on the chunked GDN prep and fused scan at 1x8192, stall samples
#   per SASS line and per barrier stretch in prof-*.txt; PROF_KERNELS and
#   PROF_COUNT override the kernel regex and the launch count)
#   (default: test memcheck bench fla serve; T_TEST, T_BENCH, T_FLA override
#   those steps' time limits so that several fit in one device call)
set -o pipefail
DEST=${OUT:-$1}
[ -n "$1" ] && shift
mkdir -p "$DEST"
OUT=$(mktemp -d)
pack() { tar czf "$DEST/gpu-logs.tgz" -C "$OUT" . ; }
steps=${*:-test memcheck bench fla serve}
B=build/gpu
# The GPU machine's image may lack our C libraries' dev packages and nothing
# can be fetched there: the caller carries Debian .debs in .deps/ (apt-get
# download libmicrohttpd-dev libcjson-dev libuv1-dev libpcre2-dev check
# pkgconf ... into .deps, ignored by git). They are unpacked into a private
# prefix, never into /, and only runtime libraries the system lacks are put
# on LD_LIBRARY_PATH.
if ! pkg-config --exists libmicrohttpd libcjson libuv libpcre2-8 check 2>/dev/null && [ -d .deps ]; then
    P=/tmp/deps; mkdir -p $P/bin
    for f in .deps/*.deb; do
        n=$(basename $f); n=${n%%_*}
        if ! command -v dpkg-deb > /dev/null; then   # not a Debian-family image
            (cd $P && ar p $OLDPWD/$f $(ar t $OLDPWD/$f | grep data.tar) | tar -x --xz 2>/dev/null \
                || ar p $OLDPWD/$f $(ar t $OLDPWD/$f | grep data.tar) | tar -x --zstd); continue
        fi
        so=$(dpkg-deb -c $f | awk '{print $6}' | grep -oE '[^/]+\.so\.[0-9]+$' | head -1)
        if [ -n "$so" ] && ldconfig -p | grep -qE "[[:space:]]$so "; then continue; fi
        dpkg-deb -x $f $P
    done
    # a -dev .so link whose runtime library the system has: point it there
    for l in $P/usr/lib/x86_64-linux-gnu/*.so; do
        [ -e "$l" ] && continue
        sys=$(ldconfig -p | grep -E "[[:space:]]$(basename $l)\.[0-9]+ " | head -1 | sed 's/.*=> //')
        [ -n "$sys" ] && ln -sf "$sys" "$l"
    done
    # Requires.private names packages (gnutls, ...) whose .pc the image may
    # lack: static-link metadata we never use, and it fails every query
    for pc in $(find $P -name '*.pc'); do sed -i -e "s|^prefix=/usr|prefix=$P/usr|" -e "/^Requires.private/d" $pc; done
    command -v pkg-config > /dev/null || ln -sf $P/usr/bin/pkgconf $P/bin/pkg-config
    export PATH=$P/bin:$PATH LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
    export PKG_CONFIG_PATH=$P/usr/lib/x86_64-linux-gnu/pkgconfig:$P/usr/share/pkgconfig
    export LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu
    pkg-config --exists libmicrohttpd libcjson libuv libpcre2-8 check && echo "deps: from .deps" \
        || echo "deps: still missing: $(pkg-config --print-errors --exists libmicrohttpd libcjson libuv libpcre2-8 check 2>&1 | head -3)"
fi
cc --version | head -1; nvcc --version | tail -2 | head -1
# a newer compiler there may warn where ours does not: warnings stay, -Werror goes
MK="make BUILD=$B -j16 WARN=-Wall\ -Wextra\ -Wno-unused-parameter"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
start=$(date +%s)
ARCH="-gencode arch=compute_90,code=sm_90"
if ! eval $MK CUARCH=\"$ARCH\" $B/check_gpu > "$OUT/build.log" 2>&1; then
    echo "BUILD FAILED"; grep -E "error|Error" "$OUT/build.log" | head -30; pack; exit 1
fi
# the bench binary: deltaserve, or (when a teammate's half-landed file breaks
# the full link) a two-line main over the same library
BENCH="$B/deltaserve bench"
if ! eval $MK CUARCH=\"$ARCH\" all >> "$OUT/build.log" 2>&1; then
    printf 'int bench_main(int, char **);\nint main(int c, char **v) { return bench_main(c - 1, v + 1); }\n' > /tmp/bmain.c
    cc -o $B/bench_only /tmp/bmain.c $B/libdeltaserve.a $(pkg-config --libs libmicrohttpd libcjson libuv libpcre2-8) \
        -fopenmp -lm -lpthread -L/usr/local/cuda/lib64 -lcudart -lcublasLt -lcublas -lstdc++ && BENCH=$B/bench_only
    echo "(deltaserve did not link; bench via $BENCH)"
fi
echo "build $(( $(date +%s) - start )) s"
pack
for s in $steps; do
    echo "== $s ($(( $(date +%s) - start )) s)"
    case $s in
    test)
        CK_FORK=no timeout ${T_TEST:-300} $B/check_gpu > "$OUT/test-gpu.log" 2>&1; echo "check_gpu rc=$?"
        grep -E "^[0-9]+%|Failure|Error|error" "$OUT/test-gpu.log" | head -40
        grep -E "rows |NaN" "$OUT/test-gpu.log" | head -20 ;;
    memcheck)
        DS_GPU_QUICK=1 CK_FORK=no timeout 150 compute-sanitizer --tool memcheck --print-limit 20 \
            $B/check_gpu > "$OUT/memcheck.log" 2>&1; echo "memcheck(all suites, quick shapes) rc=$?"
        grep -E "ERROR SUMMARY|Invalid|^[0-9]+%" "$OUT/memcheck.log" | head -10 ;;
    bench)
        timeout ${T_BENCH:-240} $BENCH --iters 20 --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1; echo "bench rc=$?"
        cat "$OUT/bench.log" | cut -c1-150 | tail -45 ;;
    racecheck)
        # shared-memory races in the chunked GDN and attention kernels (quick shapes)
        DS_GPU_QUICK=1 CK_RUN_SUITE=${RACE_SUITE:-gpu_chunk} CK_FORK=no timeout ${T_RACE:-150} \
            compute-sanitizer --tool racecheck --print-limit 10 $B/check_gpu > "$OUT/racecheck.log" 2>&1
        echo "racecheck(${RACE_SUITE:-gpu_chunk}) rc=$?"
        grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^[0-9]+%" "$OUT/racecheck.log" | head -10 ;;
    kernsan)
        # the bench's kernel rows (7B shapes, 2 iterations) under memcheck
        timeout ${T_KSAN:-120} compute-sanitizer --tool memcheck --print-limit 10 $BENCH --skip-e2e --iters 2 \
            > "$OUT/kernsan.log" 2>&1; echo "kernsan rc=$?"
        grep -E "ERROR SUMMARY|Invalid|error|at 0x" "$OUT/kernsan.log" | head -20 ;;
    spec)
        timeout 150 $BENCH --spec --json "$OUT/spec.json" > "$OUT/spec.log" 2>&1; echo "bench --spec rc=$?"
        cut -c1-150 "$OUT/spec.log" | tail -30 ;;
    fla)
        PYTHONUNBUFFERED=1 timeout ${T_FLA:-180} python3 tools/bench_fla.py --fla .scratch/fla --json "$OUT/fla.json" \
            > "$OUT/fla.log" 2>&1; echo "fla rc=$?"; tail -12 "$OUT/fla.log" ;;
    serve)
        # the real server on the GPU, bundled model, over loopback
        $B/deltaserve serve --model models/olmo-hybrid-tiny --device cuda --port 18123 --served-model-name olmo-hybrid-tiny \
            > "$OUT/serve.log" 2>&1 &
        sp=$!
        for i in $(seq 1 60); do curl -sf localhost:18123/health > /dev/null && break; sleep 0.5; done
        curl -s localhost:18123/v1/completions -H 'Content-Type: application/json' \
            -d '{"model":"olmo-hybrid-tiny","prompt":"Hello, my name is","max_tokens":16,"temperature":0}' \
            > "$OUT/serve-completion.json"; echo "completion: $(head -c 400 "$OUT/serve-completion.json")"
        curl -sN localhost:18123/v1/chat/completions -H 'Content-Type: application/json' \
            -d '{"model":"olmo-hybrid-tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"stream":true}' \
            | tail -c 300; echo
        curl -s localhost:18123/metrics | grep -E "^deltaserve:(num_requests|generation_tokens)" | head -5
        kill -INT $sp; wait $sp; echo "server rc=$?"; grep -E "device|plan|error" "$OUT/serve.log" | head -8 ;;
    chunk)
        CK_RUN_SUITE=gpu_chunk CK_FORK=no timeout ${T_TEST:-200} $B/check_gpu > "$OUT/test-chunk.log" 2>&1
        echo "gpu_chunk rc=$?"; grep -E "^[0-9]+%|Failure|rel err" "$OUT/test-chunk.log" | tail -8
        timeout ${T_BENCH:-120} $BENCH --only chunk --iters 20 --json "$OUT/bench-chunk.json" \
            > "$OUT/bench-chunk.log" 2>&1; echo "bench --only chunk rc=$?"
        grep -E "ceiling|chunk" "$OUT/bench-chunk.log" | cut -c1-150 ;;
    prof)
        # --clock-control none: the GPU's clocks are left alone (METHOD.md)
        timeout ${T_PROF:-200} ncu --clock-control none --kernel-name "regex:${PROF_KERNELS:-gdn_chunk_(prep|scan)}" \
            --launch-count ${PROF_COUNT:-2} --set full --import-source yes -f -o "$OUT/prof" \
            $BENCH --only chunk --iters 1 > "$OUT/prof-run.log" 2>&1; echo "ncu rc=$?"
        tail -3 "$OUT/prof-run.log"
        ncu --import "$OUT/prof.ncu-rep" --page details > "$OUT/prof-details.txt" 2>&1
        grep -E "gdn_chunk|Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Memory Throughput|DRAM Throughput" \
            "$OUT/prof-details.txt" | head -60
        ncu --import "$OUT/prof.ncu-rep" --page source --csv --print-source sass > "$OUT/prof-source.csv" 2>&1
        python3 tools/prof_lines.py "$OUT/prof-source.csv" > "$OUT/prof-lines.txt" 2>&1
        head -80 "$OUT/prof-lines.txt" ;;
    refs)
        PYTHONUNBUFFERED=1 timeout 200 python3 tools/make_fixtures.py --bundled-refs --out "$OUT" \
            > "$OUT/refs.log" 2>&1; echo "refs rc=$?"; tail -3 "$OUT/refs.log" ;;
    esac
    pack
done
echo "total $(( $(date +%s) - start )) s"
