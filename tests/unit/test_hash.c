/*
 * test_hash.c: the per-event key functions of hash.h. lb_key_eq against
 * memcmp for every length up to past its inline cases and a difference at
 * every position (its overlapping loads must see each byte), on buffers
 * of exactly n bytes (ASan: no load leaves them); lb_hash_words for every
 * length: each byte reaches the key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

#define MAX_LEN 40

/* A heap copy of exactly n bytes, so that a load past them is an ASan
 * error. */
static unsigned char *exact_copy(const unsigned char *src, size_t n)
{
        unsigned char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, src, n);
        return p;
}

static void test_key_eq_every_length_and_position(void **state)
{
        (void)state;
        unsigned char base[MAX_LEN];
        for (size_t i = 0; i < MAX_LEN; i++)
                base[i] = (unsigned char)('a' + i % 26);
        for (size_t n = 0; n <= MAX_LEN; n++) {
                unsigned char *a = exact_copy(base, n);
                unsigned char *b = exact_copy(base, n);
                assert_true(lb_key_eq(a, b, n));
                for (size_t at = 0; at < n; at++) {
                        /* one bit, then the whole byte, differs */
                        for (unsigned flip = 1; flip;
                             flip = flip == 1 ? 0xff : 0) {
                                b[at] ^= (unsigned char)flip;
                                assert_int_equal(lb_key_eq(a, b, n),
                                                 memcmp(a, b, n) == 0);
                                assert_false(lb_key_eq(a, b, n));
                                b[at] ^= (unsigned char)flip;
                        }
                }
                assert_true(lb_key_eq(a, b, n));
                free(a);
                free(b);
        }
}

static void test_key_eq_unaligned(void **state)
{
        (void)state;
        /* ids inside an event sit at any offset */
        const char *ev = "{\"appId\":\"app_07\",\"userId\":\"u000123456789\"}";
        assert_true(lb_key_eq(ev + 10, "app_07", 6));
        assert_false(lb_key_eq(ev + 10, "app_08", 6));
        assert_true(lb_key_eq(ev + 28, "u000123456789", 13));
        assert_false(lb_key_eq(ev + 28, "u000123456788", 13));
        assert_false(lb_key_eq(ev + 28, "v000123456789", 13));
}

static void test_hash_words_sees_every_byte(void **state)
{
        (void)state;
        unsigned char buf[MAX_LEN];
        for (size_t i = 0; i < MAX_LEN; i++)
                buf[i] = (unsigned char)i;
        for (size_t n = 1; n <= MAX_LEN; n++) {
                uint64_t h = lb_hash_words(LB_FNV1A_SEED, buf, n);
                for (size_t at = 0; at < n; at++) {
                        buf[at] ^= 0x40;
                        assert_true(lb_hash_words(LB_FNV1A_SEED, buf, n) != h);
                        buf[at] ^= 0x40;
                }
                /* the length is in the key: a zero byte more is another */
                unsigned char z[MAX_LEN + 1] = {0};
                assert_true(lb_hash_words(LB_FNV1A_SEED, z, n) !=
                            lb_hash_words(LB_FNV1A_SEED, z, n - 1));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_key_eq_every_length_and_position),
            cmocka_unit_test(test_key_eq_unaligned),
            cmocka_unit_test(test_hash_words_sees_every_byte),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
