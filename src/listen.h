/*
 * listen.h: what metrics.listen names, as a socket address: host:port with
 * an IPv4 literal, "localhost" (127.0.0.1 and nothing else) or [IPv6], so
 * the bound address is exactly the configured one and no resolver is
 * consulted. The configuration's check and the admin server's bind both
 * ask it, so a value the check accepts is one the server binds.
 */
#ifndef LB_LISTEN_H
#define LB_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

/**
 * @brief Parses listen into *ss (port included), *v6 set for IPv6.
 * @returns 0, or -1 with why (the reason, never the value) filled.
 */
int lb_listen_parse(const char *listen, struct sockaddr_storage *ss, int *v6,
                    char *why, size_t why_size);

/**
 * @brief Binds the address listen names and lets it go at once: whether
 *        the admin server could bind it. A port in use passes (the
 *        instance being replaced may hold it: the start tells).
 * @returns 0, or -1 with why filled (the address does not belong to this
 *          host, a privileged port, ...).
 */
int lb_listen_try(const char *listen, char *why, size_t why_size);

#endif
