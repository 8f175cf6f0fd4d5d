/* beanstalkd worker: reserves jobs from a tube, runs `echo` (the body back) or `sha256` (lowercase
 * hex SHA-256, libcrypto's SHA256()), and deletes them. The delete and the next reserve go in one
 * write.
 * With `reply`, a job's body is `REPLYTUBE TAG PAYLOAD`: the worker runs the handler on PAYLOAD and
 * puts `TAG RESULT` into REPLYTUBE (beanstalkd has no reply path; this is the usual substitute).
 * usage: bs_worker PORT TUBE echo|sha256 [reply] */
#include <openssl/sha.h>

#include "bs.h"

int main(int argc, char **argv) {
    if (argc < 4) die("usage: bs_worker PORT TUBE echo|sha256 [reply]");
    int sha = strcmp(argv[3], "sha256") == 0;
    int reply = argc > 4 && strcmp(argv[4], "reply") == 0;
    struct bs b;
    bs_connect(&b, atoi(argv[1]));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "watch %s\r\n", argv[2]);
    bs_command(&b, cmd, "WATCHING");
    bs_command(&b, "ignore default\r\n", "WATCHING");
    char using[256] = "default";
    size_t out_cap = 1 << 20;
    char *out = xcalloc(out_cap, 1);
    bs_write(&b, "reserve\r\n", 9);
    for (;;) {
        char *line, *body;
        size_t len;
        bs_reply(&b, &line, &body, &len);
        if (strncmp(line, "RESERVED ", 9) != 0) {
            fprintf(stderr, "bs_worker: reserve answered `%s`\n", line);
            return 1;
        }
        unsigned long id = strtoul(line + 9, NULL, 10);
        char *payload = body, *tag = NULL, *tube = NULL;
        size_t payload_len = len, tag_len = 0;
        if (reply) { /* REPLYTUBE TAG PAYLOAD */
            char *sp1 = memchr(body, ' ', len);
            char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(body + len - sp1 - 1)) : NULL;
            if (sp2 == NULL) die("reply job without `TUBE TAG `");
            tube = body;
            *sp1 = '\0';
            tag = sp1 + 1;
            tag_len = (size_t)(sp2 - tag);
            payload = sp2 + 1;
            payload_len = (size_t)(body + len - payload);
        }
        char hexd[SHA256_DIGEST_LENGTH * 2];
        const char *result = payload;
        size_t result_len = payload_len;
        if (sha) {
            static const char hex[] = "0123456789abcdef";
            unsigned char digest[SHA256_DIGEST_LENGTH];
            SHA256((const unsigned char *)payload, payload_len, digest);
            for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
                hexd[2 * i] = hex[digest[i] >> 4];
                hexd[2 * i + 1] = hex[digest[i] & 0xf];
            }
            result = hexd;
            result_len = sizeof hexd;
        }
        size_t o = 0;
        int expect_using = 0, expect_inserted = 0;
        if (reply) {
            if (strcmp(tube, using) != 0) {
                snprintf(using, sizeof using, "%s", tube);
                o += (size_t)snprintf(out + o, out_cap - o, "use %s\r\n", using);
                expect_using = 1;
            }
            if (o + tag_len + result_len + 64 > out_cap) die("result too large");
            o += (size_t)snprintf(out + o, out_cap - o, "put 0 0 120 %zu\r\n", tag_len + 1 + result_len);
            memcpy(out + o, tag, tag_len);
            o += tag_len;
            out[o++] = ' ';
            memcpy(out + o, result, result_len);
            o += result_len;
            out[o++] = '\r';
            out[o++] = '\n';
            expect_inserted = 1;
        }
        o += (size_t)snprintf(out + o, out_cap - o, "delete %lu\r\nreserve\r\n", id);
        bs_write(&b, out, o);
        if (expect_using) {
            bs_reply(&b, &line, &body, &len);
            if (strncmp(line, "USING", 5) != 0) die("use failed");
        }
        if (expect_inserted) {
            bs_reply(&b, &line, &body, &len);
            if (strncmp(line, "INSERTED", 8) != 0) die("reply put failed");
        }
        bs_reply(&b, &line, &body, &len);
        if (strcmp(line, "DELETED") != 0) die("delete failed");
    }
}
