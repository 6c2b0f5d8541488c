/*
 * listen.c: metrics.listen's host:port as a socket address (listen.h).
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "why.h"

static int is_port(const char *s)
{
        size_t i;
        for (i = 0; s[i]; i++)
                if (s[i] < '0' || s[i] > '9')
                        return 0;
        return i > 0 && i <= 5 && atoi(s) <= 65535;
}

int lb_listen_parse(const char *listen, struct sockaddr_storage *ss, int *v6,
                    char *why, size_t why_size)
{
        struct addrinfo hints, *res = NULL;
        char host[INET6_ADDRSTRLEN + 64];
        const char *colon = listen ? strrchr(listen, ':') : NULL;
        if (!colon)
                return lb_why(why, why_size, "expected host:port");
        const char *port = colon + 1;
        if (!is_port(port))
                return lb_why(why, why_size, "the port must be 0..65535");
        size_t hlen = (size_t)(colon - listen);
        *v6 = listen[0] == '[';
        if (*v6) {
                if (hlen < 3 || listen[hlen - 1] != ']')
                        return lb_why(why, why_size, "expected [IPv6]:port");
                listen++;
                hlen -= 2;
        } else if (memchr(listen, ':', hlen)) {
                return lb_why(why, why_size,
                              "put an IPv6 address in brackets, e.g. "
                              "[::1]:9100");
        } else if (hlen == 0) {
                return lb_why(why, why_size,
                              "the host is empty (use 0.0.0.0 to listen on "
                              "every interface)");
        }
        if (hlen >= sizeof(host))
                return lb_why(why, why_size, "the host is too long");
        memcpy(host, listen, hlen);
        host[hlen] = '\0';
        if (!*v6 && strcmp(host, "localhost") == 0)
                strcpy(host, "127.0.0.1");
        struct in_addr probe;
        /* getaddrinfo also takes "127.1" and hex; only dotted quads say
         * unambiguously where to bind. */
        if (!*v6 && inet_pton(AF_INET, host, &probe) != 1)
                return lb_why(why, why_size,
                              "the host is not an IPv4 address, localhost or "
                              "[IPv6] (no names: the address bound is the "
                              "one given)");
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = *v6 ? AF_INET6 : AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
        int rc = getaddrinfo(host, port, &hints, &res);
        if (rc != 0)
                return lb_why(why, why_size,
                              "the host is not a valid %s address: %s",
                              *v6 ? "IPv6" : "IPv4", gai_strerror(rc));
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        return 0;
}

int lb_listen_try(const char *listen, char *why, size_t why_size)
{
        struct sockaddr_storage ss;
        int v6;
        if (lb_listen_parse(listen, &ss, &v6, why, why_size))
                return -1;
        int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
                return 0; /* no socket to try with: the server will tell */
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        int rc =
            bind(fd, (struct sockaddr *)&ss,
                 v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
        int err = errno;
        close(fd);
        if (rc == 0 || err == EADDRINUSE)
                return 0;
        return lb_why(why, why_size, "cannot be bound: %s", strerror(err));
}
