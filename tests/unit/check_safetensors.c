/* tests/unit/check_safetensors.c: safetensors parsing and validation: good
 * files in each dtype, truncated files, lying headers (offsets past the end,
 * size mismatches, header length past the file, overlaps, bad dtypes, shape
 * overflow, duplicates), sharded index sets, and the dtype converters.
 * Files are written into a temp dir by tests/unit/util_st_writer.c.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"
#include "tests/unit/util_st_writer.h"

static char tmp[256];

static void setup(void)
{
    ck_assert(stw_tmpdir(tmp, sizeof tmp) != NULL);
}

static void teardown(void)
{
    stw_rmtree(tmp);
}

static const char *tpath(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    return p;
}

/* ---------------------------------------------------------------- good */

START_TEST(test_roundtrip_dtypes)
{
    struct stw *w = stw_create();
    float v[6] = { 1.0f, -2.5f, 0.15625f, 3e-5f, -0.0f, 65504.0f };
    ck_assert_int_eq(stw_add_f32(w, "a.f32", ST_F32, 2, (int64_t[]){ 2, 3 }, v), 0);
    ck_assert_int_eq(stw_add_f32(w, "b.bf16", ST_BF16, 1, (int64_t[]){ 6 }, v), 0);
    ck_assert_int_eq(stw_add_f32(w, "c.f16", ST_F16, 3, (int64_t[]){ 1, 2, 3 }, v), 0);
    ck_assert_int_eq(stw_add(w, "d.empty", ST_F32, 2, (int64_t[]){ 0, 4 }, NULL, 0), 0);
    ck_assert_int_eq(stw_add_f32(w, "e.scalar", ST_F32, 0, NULL, v), 0);
    ck_assert_int_eq(stw_write(w, tpath("m.safetensors"), "{\"format\":\"pt\"}"), 0);
    stw_destroy(w);

    struct st_file f;
    char err[512];
    ck_assert_msg(st_open(&f, tpath("m.safetensors"), err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(f.n, 5); /* __metadata__ skipped */
    const struct st_tensor *a = st_find(&f, "a.f32"), *b = st_find(&f, "b.bf16"), *c = st_find(&f, "c.f16");
    ck_assert(a && b && c);
    ck_assert(st_find(&f, "__metadata__") == NULL);
    ck_assert(st_find(&f, "nope") == NULL);
    ck_assert_int_eq(a->dtype, ST_F32);
    ck_assert_int_eq(a->ndim, 2);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_int_eq(a->shape[1], 3);
    ck_assert_int_eq(a->numel, 6);
    ck_assert_uint_eq(a->nbytes, 24);
    ck_assert_int_eq(b->dtype, ST_BF16);
    ck_assert_uint_eq(b->nbytes, 12);
    ck_assert_int_eq(c->dtype, ST_F16);
    ck_assert_int_eq(c->ndim, 3);
    float out[6];
    st_to_f32(a, out);
    for (int i = 0; i < 6; i++) ck_assert(out[i] == v[i]);
    st_to_f32(c, out);
    for (int i = 0; i < 6; i++) ck_assert_msg(fabsf(out[i] - v[i]) <= 1e-3f * fabsf(v[i]) + 1e-7f, "f16 %d: %g", i, out[i]);
    for (int i = 0; i < 6; i++) {
        float e = st_get_f32(b, i);
        ck_assert_msg(fabsf(e - v[i]) <= 8e-3f * fabsf(v[i]), "bf16 %d: %g vs %g", i, e, v[i]);
    }
    const struct st_tensor *d = st_find(&f, "d.empty"), *s = st_find(&f, "e.scalar");
    ck_assert_int_eq(d->numel, 0);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_int_eq(s->numel, 1);
    ck_assert(st_get_f32(s, 0) == 1.0f);
    /* sorted by name */
    for (int i = 1; i < f.n; i++) ck_assert(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0);
    st_close(&f);
    st_close(&f); /* idempotent on a closed struct */
}
END_TEST

START_TEST(test_converters)
{
    ck_assert(st_bf16_to_f32(0x3f80) == 1.0f);
    ck_assert(st_bf16_to_f32(0xc000) == -2.0f);
    ck_assert_uint_eq(st_f32_to_bf16(1.0f), 0x3f80);
    /* round to nearest even: 1 + 2^-8 is halfway between bf16 1 and 1+2^-7 */
    ck_assert_uint_eq(st_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    ck_assert_uint_eq(st_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    ck_assert(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
    ck_assert(isinf(st_bf16_to_f32(st_f32_to_bf16(INFINITY))));
    ck_assert(st_f16_to_f32(0x3c00) == 1.0f);
    ck_assert(st_f16_to_f32(0xc000) == -2.0f);
    ck_assert(st_f16_to_f32(0x7bff) == 65504.0f);
    ck_assert(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    ck_assert(st_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));
    ck_assert(isinf(st_f16_to_f32(0x7c00)));
    ck_assert(isnan(st_f16_to_f32(0x7e00)));
    ck_assert(signbit(st_f16_to_f32(0x8000)));
    /* unaligned source */
    unsigned char buf[9] = { 0 };
    float one = 1.0f;
    memcpy(buf + 1, &one, 4);
    float out;
    st_convert_f32(ST_F32, buf + 1, 1, &out);
    ck_assert(out == 1.0f);
}
END_TEST

/* ---------------------------------------------------------------- hostile files */

/* A header padded as a writer would not: the raw cases below build exact bytes. */
static const struct raw_case {
    const char *header;
    size_t data_len;
    const char *want;
} raw_cases[] = {
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "past the data section" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16, "needs 16" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,4]}}", 16, "begin 8 > end 4" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, "overlap" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, "overlap" },
    { "{\"t\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "tensor 't': unsupported dtype 'I64'" },
    { "{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 16, "unsupported dtype 'F8_E4M3'" },
    { "{\"t\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 16, "dtype" },
    { "{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 16, "dtype" },
    { "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 16, "shape" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 16, "data_offsets" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 16, "data_offsets" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 16, "shape[0]" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 16, "shape[0]" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 16, "shape[0]" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 16,
      "overflows" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 16, "shape[0]" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,1024],\"data_offsets\":[0,8]}}", 16, "overflow" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 16, "dimensions" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 16, "data_offsets" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", 16, "data_offsets" },
    { "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 16, "appears twice" },
    { "{\"t\":[1,2]}", 16, "not an object" },
    { "{\"__metadata__\":7}", 16, "__metadata__" },
    { "[1,2,3]", 16, "JSON object" },
    { "{\"t\":", 16, "not valid JSON" },
    { "{}xx", 16, "trailing" },
    { "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 16, "empty name" },
};

START_TEST(test_raw_bad)
{
    const struct raw_case *rc = &raw_cases[_i];
    ck_assert_int_eq(stw_write_raw(tpath("bad.safetensors"), (uint64_t)-1, rc->header, NULL, rc->data_len), 0);
    struct st_file f;
    char err[512] = "";
    ck_assert_msg(st_open(&f, tpath("bad.safetensors"), err, sizeof err) == -1, "case %d accepted", _i);
    ck_assert_msg(strstr(err, rc->want) != NULL, "case %d: '%s' lacks '%s'", _i, err, rc->want);
    ck_assert(f.tensors == NULL && f.map == NULL);
}
END_TEST

START_TEST(test_header_length_lies)
{
    const char *h = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    struct st_file f;
    char err[512];
    /* header length bigger than the file */
    ck_assert_int_eq(stw_write_raw(tpath("a.safetensors"), 1u << 20, h, NULL, 4), 0);
    ck_assert_int_eq(st_open(&f, tpath("a.safetensors"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "exceeds the file"), "%s", err);
    /* absurd length (would wrap a naive 8 + len) */
    ck_assert_int_eq(stw_write_raw(tpath("b.safetensors"), UINT64_MAX - 4, h, NULL, 4), 0);
    ck_assert_int_eq(st_open(&f, tpath("b.safetensors"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "exceeds the file"), "%s", err);
    /* shorter than the JSON: the header is cut mid-object */
    ck_assert_int_eq(stw_write_raw(tpath("c.safetensors"), 10, h, NULL, 4), 0);
    ck_assert_int_eq(st_open(&f, tpath("c.safetensors"), err, sizeof err), -1);
    /* zero */
    ck_assert_int_eq(stw_write_raw(tpath("d.safetensors"), 0, h, NULL, 4), 0);
    ck_assert_int_eq(st_open(&f, tpath("d.safetensors"), err, sizeof err), -1);
    /* files shorter than the 8-byte prefix, and empty */
    ck_assert_int_eq(stw_write_text(tmp, "e.safetensors", "abc"), 0);
    ck_assert_int_eq(st_open(&f, tpath("e.safetensors"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "too short"), "%s", err);
    ck_assert_int_eq(stw_write_text(tmp, "f.safetensors", ""), 0);
    ck_assert_int_eq(st_open(&f, tpath("f.safetensors"), err, sizeof err), -1);
    ck_assert_int_eq(st_open(&f, tpath("missing.safetensors"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "missing.safetensors"), "%s", err);
}
END_TEST

START_TEST(test_truncated)
{
    /* a good file cut at every length must be rejected cleanly, never read
     * out of bounds (ASan/UBSan builds check the latter) */
    struct stw *w = stw_create();
    float v[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    ck_assert_int_eq(stw_add_f32(w, "x", ST_F32, 1, (int64_t[]){ 8 }, v), 0);
    ck_assert_int_eq(stw_add_f32(w, "y", ST_BF16, 2, (int64_t[]){ 2, 4 }, v), 0);
    ck_assert_int_eq(stw_write(w, tpath("g.safetensors"), NULL), 0);
    stw_destroy(w);
    FILE *fp = fopen(tpath("g.safetensors"), "rb");
    unsigned char buf[512];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    char err[512];
    struct st_file f;
    ck_assert_int_eq(st_parse(&f, buf, n, err, sizeof err), 0);
    st_close(&f);
    for (size_t cut = 0; cut < n; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1); /* exact-size copy so ASan sees any overread */
        memcpy(copy, buf, cut);
        ck_assert_msg(st_parse(&f, copy, cut, err, sizeof err) == -1, "cut at %zu accepted", cut);
        free(copy);
    }
    /* and on disk */
    ck_assert_int_eq(stw_write_raw(tpath("h.safetensors"), (uint64_t)-1,
                                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", v, 31), 0);
    ck_assert_int_eq(st_open(&f, tpath("h.safetensors"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "truncated"), "%s", err);
}
END_TEST

START_TEST(test_padding_and_unaligned)
{
    /* trailing spaces in the header are padding; an odd header length leaves
     * data unaligned, which the converters must handle */
    float v[2] = { 1.5f, -3.0f };
    ck_assert_int_eq(stw_write_raw(tpath("p.safetensors"), (uint64_t)-1,
                                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ", v, 8), 0);
    struct st_file f;
    char err[512];
    ck_assert_msg(st_open(&f, tpath("p.safetensors"), err, sizeof err) == 0, "%s", err);
    const struct st_tensor *t = st_find(&f, "x");
    ck_assert(st_get_f32(t, 0) == 1.5f && st_get_f32(t, 1) == -3.0f);
    float out[2];
    st_to_f32(t, out);
    ck_assert(out[1] == -3.0f);
    st_close(&f);
}
END_TEST

/* ---------------------------------------------------------------- sets */

static void write_shard(const char *name, const char *const *tensors, int n)
{
    struct stw *w = stw_create();
    float v[4] = { 1, 2, 3, 4 };
    for (int i = 0; i < n; i++) ck_assert_int_eq(stw_add_f32(w, tensors[i], ST_BF16, 1, (int64_t[]){ 4 }, v), 0);
    ck_assert_int_eq(stw_write(w, tpath(name), NULL), 0);
    stw_destroy(w);
}

START_TEST(test_sharded)
{
    write_shard("model-00001-of-00002.safetensors", (const char *[]){ "a", "b" }, 2);
    write_shard("model-00002-of-00002.safetensors", (const char *[]){ "c" }, 1);
    ck_assert_int_eq(stw_write_text(tmp, "model.safetensors.index.json",
                                    "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
                                    "\"a\":\"model-00001-of-00002.safetensors\","
                                    "\"b\":\"model-00001-of-00002.safetensors\","
                                    "\"c\":\"model-00002-of-00002.safetensors\"}}"),
                     0);
    struct st_set s;
    char err[512];
    ck_assert_msg(st_set_open(&s, tmp, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(s.nfiles, 2);
    ck_assert(st_set_find(&s, "a") && st_set_find(&s, "b") && st_set_find(&s, "c"));
    ck_assert(st_set_find(&s, "d") == NULL);
    ck_assert(st_get_f32(st_set_find(&s, "c"), 3) == 4.0f);
    st_set_close(&s);
}
END_TEST

static void expect_set_error(const char *index, const char *want)
{
    ck_assert_int_eq(stw_write_text(tmp, "model.safetensors.index.json", index), 0);
    struct st_set s;
    char err[512] = "";
    ck_assert_msg(st_set_open(&s, tmp, err, sizeof err) == -1, "accepted: %s", index);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' lacks '%s'", err, want);
    ck_assert_int_eq(s.nfiles, 0);
}

START_TEST(test_sharded_bad)
{
    write_shard("s1.safetensors", (const char *[]){ "a", "b" }, 2);
    write_shard("s2.safetensors", (const char *[]){ "c", "a" }, 2);
    /* mapped tensor missing from its shard */
    expect_set_error("{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\",\"z\":\"s1.safetensors\"}}",
                     "tensor 'z' is mapped to s1.safetensors");
    /* shard that does not exist */
    expect_set_error("{\"weight_map\":{\"a\":\"s9.safetensors\"}}", "s9.safetensors");
    /* shard holding a tensor mapped elsewhere (a is in s1 and s2) */
    expect_set_error("{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}",
                     "holds tensor 'a'");
    /* shard holding a tensor the map does not name */
    write_shard("s3.safetensors", (const char *[]){ "p", "q" }, 2);
    expect_set_error("{\"weight_map\":{\"p\":\"s3.safetensors\"}}", "holds tensor 'q'");
    /* path escape, bad types, not JSON */
    expect_set_error("{\"weight_map\":{\"a\":\"../s1.safetensors\"}}", "plain shard file name");
    expect_set_error("{\"weight_map\":{\"a\":7}}", "plain shard file name");
    expect_set_error("{\"weight_map\":[]}", "weight_map");
    expect_set_error("{\"weight_map\":{}}", "empty");
    expect_set_error("{\"weight_map\":", "not valid JSON");
}
END_TEST

START_TEST(test_set_single_file_rules)
{
    struct st_set s;
    char err[512];
    ck_assert_int_eq(st_set_open(&s, tmp, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "no model.safetensors"), "%s", err);
    write_shard("weights.safetensors", (const char *[]){ "a" }, 1);
    ck_assert_msg(st_set_open(&s, tmp, err, sizeof err) == 0, "%s", err); /* the single *.safetensors */
    ck_assert(st_set_find(&s, "a"));
    st_set_close(&s);
    write_shard("other.safetensors", (const char *[]){ "b" }, 1);
    ck_assert_int_eq(st_set_open(&s, tmp, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "2 .safetensors files"), "%s", err);
    write_shard("model.safetensors", (const char *[]){ "m" }, 1); /* model.safetensors wins */
    ck_assert_msg(st_set_open(&s, tmp, err, sizeof err) == 0, "%s", err);
    ck_assert(st_set_find(&s, "m") && !st_set_find(&s, "a"));
    st_set_close(&s);
    /* a bad model.safetensors is an error naming it */
    ck_assert_int_eq(stw_write_text(tmp, "model.safetensors", "12345678{"), 0);
    ck_assert_int_eq(st_set_open(&s, tmp, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "model.safetensors"), "%s", err);
}
END_TEST

Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("good");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip_dtypes);
    tcase_add_test(tc, test_converters);
    tcase_add_test(tc, test_padding_and_unaligned);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_raw_bad, 0, (int)(sizeof raw_cases / sizeof *raw_cases));
    tcase_add_test(tc, test_header_length_lies);
    tcase_add_test(tc, test_truncated);
    suite_add_tcase(s, tc);
    tc = tcase_create("sets");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_sharded_bad);
    tcase_add_test(tc, test_set_single_file_rules);
    suite_add_tcase(s, tc);
    return s;
}
