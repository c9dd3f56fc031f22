/* The baseline for dgram-bench: a DTLS 1.2 echo server written as plain C on wolfSSL's native API, the way the
 * tutorial writes it, minus its connect()-the-listening-socket race: one unconnected socket, wolfSSL's own
 * socket I/O with wolfSSL_dtls_set_peer, one session at a time. Same certificate, cipher suites and groups as
 * dgram's defaults. Prints "listening on 127.0.0.1:PORT", then serves until killed (wolfSSL retries reads after
 * EINTR, so dgram-bench stops it with SIGKILL).
 * Usage: wolfssl-plain-server CERT KEY */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char* ciphers =
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

static int bound_socket(struct sockaddr_in* address) {
  socklen_t length = sizeof *address;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  memset(address, 0, sizeof *address);
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr*)address, sizeof *address) != 0 ||
      getsockname(fd, (struct sockaddr*)address, &length) != 0)
    return -1;
  return fd;
}

static void serve_one(WOLFSSL_CTX* ctx, int fd) {
  unsigned char buffer[2048];
  struct sockaddr_in peer;
  socklen_t length = sizeof peer;
  WOLFSSL* ssl;
  int got;
  /* Learn the next client's address from its first datagram, left in the queue for wolfSSL. */
  if (recvfrom(fd, buffer, sizeof buffer, MSG_PEEK, (struct sockaddr*)&peer, &length) < 0) return;
  ssl = wolfSSL_new(ctx);
  if (!ssl) return;
  wolfSSL_dtls_set_peer(ssl, &peer, length);
  wolfSSL_set_fd(ssl, fd);
  if (wolfSSL_accept(ssl) == WOLFSSL_SUCCESS) {
    while ((got = wolfSSL_read(ssl, buffer, sizeof buffer)) > 0)
      if (wolfSSL_write(ssl, buffer, got) != got) break;
    wolfSSL_shutdown(ssl);
  } else {
    /* A failed or abandoned handshake: drop what is left of it. */
    while (recvfrom(fd, buffer, sizeof buffer, MSG_DONTWAIT, NULL, NULL) > 0) {
    }
  }
  wolfSSL_free(ssl);
}

int main(int argc, char** argv) {
  struct sockaddr_in address;
  WOLFSSL_CTX* ctx;
  int fd;
  if (argc != 3) {
    fprintf(stderr, "usage: wolfssl-plain-server CERT KEY\n");
    return 2;
  }
  wolfSSL_Init();
  ctx = wolfSSL_CTX_new(wolfDTLSv1_2_server_method());
  if (!ctx || wolfSSL_CTX_use_certificate_chain_file(ctx, argv[1]) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_use_PrivateKey_file(ctx, argv[2], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_set_cipher_list(ctx, ciphers) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_UseSupportedCurve(ctx, WOLFSSL_ECC_X25519) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_UseSupportedCurve(ctx, WOLFSSL_ECC_SECP256R1) != WOLFSSL_SUCCESS) {
    fprintf(stderr, "wolfssl-plain-server: cannot set up the wolfSSL context\n");
    return 1;
  }
  fd = bound_socket(&address);
  if (fd < 0) {
    perror("wolfssl-plain-server: socket");
    return 1;
  }
  printf("listening on 127.0.0.1:%u\n", ntohs(address.sin_port));
  fflush(stdout);
  for (;;) serve_one(ctx, fd);
}
