/*
 * fuzz_response.c: libFuzzer target for the response decoder. Input layout:
 * byte 0 picks the HTTP status (low 4 bits index the table below), byte 1
 * the number of actions (mod 9), the rest is the body; the body's first
 * bytes also go to lb_multi_retry_after_ms. Properties: no crash, reasons
 * and messages printable and bounded, and an action is reported ok only if
 * the body's response entry at its index is an object with success:true.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multi.h"

static const int statuses[16] = {200, 200, 201, 204, 403, 408, 429, 500,
                                 503, 400, 401, 404, 301, 100, 0,   600};

#define MAX_ACTIONS 8

static void check_text(const char *s, size_t max)
{
        size_t n = strlen(s);
        if (n > max)
                abort();
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        abort();
}

/* Every ok verdict must be backed by the body itself. */
static void check_done(int status, const char *body, size_t len, size_t n,
                       int accept, const lb_action_result_t *r)
{
        if (status < 200 || status > 299)
                abort();
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *resp = json_object_get(root, "response");
        if (!json_is_array(resp) || json_array_size(resp) != n)
                abort();
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(resp, i);
                json_t *err = json_object_get(e, "error");
                json_t *warn = json_object_get(e, "warning");
                int has_err = err && !json_is_null(err);
                int has_warn = warn && !json_is_null(warn);
                /* Delivered only when the API says it applied it. */
                if (r[i].ok && (!json_is_true(json_object_get(e, "success")) ||
                                has_err || (has_warn && !accept)))
                        abort();
                if (!r[i].ok && r[i].stage != LB_STAGE_API &&
                    r[i].stage != LB_STAGE_API_SKIPPED &&
                    r[i].stage != LB_STAGE_API_WARNING)
                        abort();
                if (r[i].warning != has_warn)
                        abort();
                if (r[i].message)
                        check_text(r[i].message, LB_MULTI_MESSAGE_MAX);
                else if (!r[i].ok)
                        abort(); /* a failure always says why */
        }
        json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        int status = statuses[data[0] & 15];
        size_t n = data[1] % (MAX_ACTIONS + 1);
        const char *body = (const char *)data + 2;
        size_t len = size - 2;

        lb_action_result_t r[MAX_ACTIONS];
        memset(r, 0, sizeof(r));
        char reason[512];
        int accept = (data[0] & 16) != 0;
        int cut = (data[0] & 32) != 0; /* the sender ended a 2xx answer */
        int ok = status >= 200 && status <= 299;
        lb_outcome_t o =
            lb_multi_classify(status, body, len, n,
                              (accept ? LB_MULTI_ACCEPT_WARNINGS : 0) |
                                  (cut ? LB_MULTI_ANSWER_CUT : 0),
                              r, reason, sizeof(reason));
        /* a 2xx answer not read whole is never read as verdicts, nor sent
         * again as it is */
        if (cut && ok && o != (n > 1 ? LB_OUTCOME_SPLIT : LB_OUTCOME_DEAD))
                abort();
        switch (o) {
        case LB_OUTCOME_DONE:
                check_done(status, body, len, n, accept, r);
                break;
        case LB_OUTCOME_SPLIT:
                if ((status != 403 && !(cut && ok)) || n < 2)
                        abort();
                break;
        case LB_OUTCOME_KEY_REFUSED:
                if (status != 401 && status != 403)
                        abort();
                break;
        case LB_OUTCOME_MISDIRECTED: /* never the API's own answer */
                if (!lb_multi_misdirected(status) && status != 403)
                        abort();
                break;
        case LB_OUTCOME_RETRY:
        case LB_OUTCOME_DEAD:
                break;
        default:
                abort();
        }
        if (o != LB_OUTCOME_DONE)
                check_text(reason, LB_MULTI_MESSAGE_MAX + 64);
        lb_multi_results_clear(r, n);

        char header[64];
        size_t hl = len < sizeof(header) - 1 ? len : sizeof(header) - 1;
        memcpy(header, body, hl);
        header[hl] = '\0';
        if (lb_multi_retry_after_ms(header, 784111777) < -1)
                abort();
        return 0;
}
