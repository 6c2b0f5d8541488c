/*
 * fuzz_event.c: libFuzzer target for the input contract. Any bytes given to
 * lb_event_parse must be accepted or rejected without a crash; a rejection
 * carries a printable one-line reason; an accepted value, written by
 * lb_multi_body (twice in one request, read in pieces of a size the input
 * picks), must give valid JSON of the announced length within the size
 * bound the batcher packs against. The same parse with the shapes
 * learned from every input so far (lb_event_shapes_new) gives the same
 * result, reason and event.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "multi.h"
#include "arena.h"

/* The arena every action of this test lives in (reachable: no leak). */
static lb_arena_t *arena(void)
{
        static lb_arena_t *a;
        if (!a)
                a = lb_arena_new();
        return a;
}

/* sorted by id, as the configuration keeps them (lb_config_app_index) */
static lb_app_t apps[] = {
    {.id = "app\"2", .client_key = "k\\ey2"},
    {.id = "app1", .client_key = "key1"},
};

static const lb_config_t conf = {
    .apps = apps,
    .app_cnt = sizeof(apps) / sizeof(apps[0]),
    .api_version = "1.0.6",
    .batch_max_bytes = 64 * 1024,
};

#define APP_CNT (sizeof(apps) / sizeof(apps[0]))
static size_t app_overhead[APP_CNT];

static void check_reason(const char *err)
{
        if (!err[0])
                abort();
        for (const char *p = err; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        abort();
}

static void check_encoding(const uint8_t *data, size_t size,
                           const lb_event_t *ev)
{
        lb_action_t *a = lb_action_new(arena(), NULL, 0, data, size);
        if (!a)
                return;
        a->time_missing = ev->time_missing != 0;
        a->object_empty = ev->object_empty != 0;
        a->timestamp_ms = (int64_t)size * 7919 - 1000;
        lb_action_t *const two[2] = {a, a};
        const lb_app_t *app = &conf.apps[ev->app];
        size_t bound =
            lb_multi_overhead(app->id, app->client_key, conf.api_version) +
            2 * lb_event_body_len(size, ev->time_missing);
        lb_buf_t b = {0};
        lb_multi_body_t w = {0};
        if (lb_multi_body_start(&w, app->id, app->client_key, conf.api_version,
                                1375295890.123, two, 2) == 0 &&
            lb_buf_reserve(&b, w.len) == 0) {
                size_t piece = 1 + size % 61, got;
                while ((got = lb_multi_body_read(
                            &w, b.data + b.len,
                            w.len - b.len < piece ? w.len - b.len : piece)))
                        b.len += got;
                if (b.len != w.len || b.len > bound ||
                    lb_multi_body_read(&w, b.data, 1))
                        abort();
                json_t *root = json_loadb(b.data, b.len, 0, NULL);
                json_t *data_arr = json_object_get(root, "data");
                if (json_array_size(data_arr) != 2)
                        abort();
                json_t *first = json_array_get(data_arr, 0);
                if (!json_is_object(first) ||
                    !json_is_number(json_object_get(first, "time")))
                        abort();
                json_decref(root);
        }
        lb_multi_body_free(&w);
        lb_buf_free(&b);
        lb_action_destroy(a);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        for (size_t i = 0; i < APP_CNT; i++)
                app_overhead[i] = lb_multi_overhead(
                    apps[i].id, apps[i].client_key, conf.api_version);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static lb_json_shapes_t *shapes;
        if (!shapes && !(shapes = lb_event_shapes_new()))
                abort();
        lb_event_t ev, again;
        char err[256], why[256];
        lb_stage_t stage =
            lb_event_parse(&conf, app_overhead, NULL, (const char *)data, size,
                           &ev, err, sizeof(err));
        for (int i = 0; i < 2; i++)
                if (lb_event_parse(&conf, app_overhead, shapes,
                                   (const char *)data, size, &again, why,
                                   sizeof(why)) != stage ||
                    strcmp(why, err) ||
                    (stage == LB_STAGE_NONE &&
                     (again.app != ev.app ||
                      again.time_missing != ev.time_missing ||
                      memcmp(&again.time_s, &ev.time_s, sizeof(ev.time_s)) ||
                      again.object_empty != ev.object_empty ||
                      again.closes != ev.closes ||
                      again.user_len != ev.user_len ||
                      memcmp(again.user, ev.user, ev.user_len + 1))))
                        abort();
        if (stage == LB_STAGE_PARSE || stage == LB_STAGE_VALIDATE) {
                check_reason(err);
                return 0;
        }
        if (stage != LB_STAGE_NONE || ev.app < 0 ||
            (size_t)ev.app >= conf.app_cnt || ev.user_len < 1 ||
            ev.user_len > LB_USER_ID_MAX || strlen(ev.user) != ev.user_len)
                abort();
        check_encoding(data, size, &ev);
        return 0;
}
