/* SPDX-License-Identifier: MIT */
/*
 * api/tls/ktls.c - what the TLS room asks of the kernel's TLS (kTLS,
 * Linux 4.13 on; net/tls in the kernel, the "tls" ULP of TCP): whether
 * it is there, attaching it to a socket, installing a direction's keys,
 * and the control messages that carry a record's type.
 *
 * The keys themselves come from OpenSSL: with SSL_OP_ENABLE_KTLS it
 * fills a crypto_info of <linux/tls.h> at each change of keys and hands
 * it to the BIO (api/tls/tls.c), which installs it here. Which path a
 * stream is on is the stream's business (tls.c); this file only talks to
 * the kernel.
 */
#include "api/tls/tls_impl.h"

#include <arpa/inet.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static bool available, wanted;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

/* Whether the kernel attaches the "tls" ULP to a connected TCP socket
 * (it refuses a listening one): a loopback pair made for the question.
 * The first attach loads the tls module if it is a module. */
static void probe(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int a = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&sa, sl) == 0 &&
        listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&sa, &sl) == 0 &&
        connect(c, (struct sockaddr *)&sa, sl) == 0 &&
        (a = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        available = setsockopt(c, SOL_TCP, TCP_ULP, "tls", 3) == 0;
    for (int *fd = (int[]){l, c, a}, i = 0; i < 3; i++)
        if (fd[i] >= 0)
            wf_close(fd[i]);
    /* WEFT_TLS_KTLS=0: every stream of the process stays in userspace
     * (A/B measurements), as weft_tls_config_ktls(c, false) does for a
     * configuration. */
    const char *env = getenv("WEFT_TLS_KTLS");
    wanted = available && !(env && strcmp(env, "0") == 0);
}

WF_EXPORT bool weft_tls_ktls_available(void)
{
    pthread_once(&probe_once, probe);
    return available;
}

bool wf_ktls_wanted(void)
{
    pthread_once(&probe_once, probe);
    return wanted;
}

bool wf_ktls_attach(int fd)
{
    int proto = 0;
    socklen_t len = sizeof proto;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 ||
        proto != IPPROTO_TCP)
        return false;
    return setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 3) == 0;
}

/* The size of the crypto_info a cipher takes: the kernel wants exactly
 * it. Taken from the cipher, not from the length OpenSSL keeps after its
 * union, whose layout is OpenSSL's own (it depends on the kernel headers
 * OpenSSL was built with). */
static size_t info_size(const struct tls_crypto_info *info)
{
    switch (info->cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
        return sizeof(struct tls12_crypto_info_aes_gcm_128);
    case TLS_CIPHER_AES_GCM_256:
        return sizeof(struct tls12_crypto_info_aes_gcm_256);
    case TLS_CIPHER_AES_CCM_128:
        return sizeof(struct tls12_crypto_info_aes_ccm_128);
    case TLS_CIPHER_CHACHA20_POLY1305:
        return sizeof(struct tls12_crypto_info_chacha20_poly1305);
    default:
        return 0;
    }
}

int wf_ktls_install(int fd, const void *crypto_info, bool tx)
{
    const struct tls_crypto_info *info = crypto_info;
    size_t size = info ? info_size(info) : 0;
    if (!size)
        return -EOPNOTSUPP;
    if (setsockopt(fd, SOL_TLS, tx ? TLS_TX : TLS_RX, info, (socklen_t)size))
        return -errno;
    return 0;
}

void wf_ktls_set_type(struct msghdr *mh, wf_ktls_cmsg *cbuf, unsigned char type)
{
    memset(cbuf, 0, sizeof *cbuf);
    mh->msg_control = cbuf;
    mh->msg_controllen = sizeof *cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(mh);
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(sizeof type);
    memcpy(CMSG_DATA(cm), &type, sizeof type);
}

void wf_ktls_want_type(struct msghdr *mh, wf_ktls_cmsg *cbuf)
{
    memset(cbuf, 0, sizeof *cbuf);
    mh->msg_control = cbuf;
    mh->msg_controllen = sizeof *cbuf;
}

int wf_ktls_type(const struct msghdr *mh)
{
    /* The kernel puts the type on every recvmsg given room for it (Linux
     * 4.17 on); none would mean application data. */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)mh); cm;
         cm = CMSG_NXTHDR((struct msghdr *)mh, cm)) {
        if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
            return *CMSG_DATA(cm);
    }
    return WF_TLS_RT_DATA;
}
