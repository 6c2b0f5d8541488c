/*
 * test_exit_watch.c: the exit bound's backstop ends a process stuck past
 * its deadline, with the code given and a line naming the step it was
 * in; a process that ends first is not touched. Each case runs in a
 * child process (the watch calls _exit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "exit_watch.h"

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs child() in a process whose stderr goes to err (size bytes, NUL
 * ended); returns its wait status, *took_ms how long it ran. */
static int run(void (*child)(void), char *err, size_t size, int64_t *took_ms)
{
        int fd[2];
        assert_int_equal(pipe(fd), 0);
        int64_t t0 = now_ms();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(fd[0]);
                dup2(fd[1], 2);
                child();
                _exit(99);
        }
        close(fd[1]);
        size_t n = 0;
        ssize_t r;
        while (n < size - 1 && (r = read(fd[0], err + n, size - 1 - n)) > 0)
                n += (size_t)r;
        err[n] = '\0';
        close(fd[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        *took_ms = now_ms() - t0;
        return status;
}

static void stuck(void)
{
        lb_exit_watch_step("leaving the group");
        assert_int_equal(lb_exit_watch_start(200, 3), 0);
        sleep(30); /* a call that does not return */
}

static void test_a_stuck_process_ends_at_the_deadline(void **state)
{
        (void)state;
        char err[2048];
        int64_t took;
        int status = run(stuck, err, sizeof(err), &took);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 3);
        assert_true(took >= 200);
        assert_true(took < 20000); /* not the 30 s sleep */
        assert_non_null(strstr(err, "leaving the group"));
        assert_non_null(strstr(err, "exiting now"));
}

static void done_first(void)
{
        assert_int_equal(lb_exit_watch_start(5000, 3), 0);
        lb_exit_watch_step("the cleanup");
        exit(0); /* the watch's thread ends with the process */
}

static void test_a_process_that_ends_first_is_not_touched(void **state)
{
        (void)state;
        char err[2048];
        int64_t took;
        int status = run(done_first, err, sizeof(err), &took);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_string_equal(err, "");
}

static void zero_deadline(void)
{
        lb_exit_watch_step("the final commit");
        assert_int_equal(lb_exit_watch_start(-5, 1), 0); /* already spent */
        sleep(30);
}

static void test_a_spent_deadline_ends_it_at_once(void **state)
{
        (void)state;
        char err[2048];
        int64_t took;
        int status = run(zero_deadline, err, sizeof(err), &took);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        assert_true(took < 20000);
        assert_non_null(strstr(err, "the final commit"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_a_stuck_process_ends_at_the_deadline),
            cmocka_unit_test(test_a_process_that_ends_first_is_not_touched),
            cmocka_unit_test(test_a_spent_deadline_ends_it_at_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
