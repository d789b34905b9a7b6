/* http.c — libcurl wrapper (see http.h).
 *
 * DESIGN: a fresh CURL easy handle per request keeps the module free of
 * shared state; the price (a new connection per call) is what the OpenStack
 * WSGI servers want anyway (they close connections). curl_global_init runs
 * once through pthread_once. The body goes into a capped dbuf; the write
 * callback stops the transfer when the cap would be passed. */
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dbuf.h"
#include "http.h"
#include "log.h"

#define HTTP_HEADER_MAX (64u * 1024)

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static void http_global_init(void) {
        (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct xfer {
        struct dbuf body;
        bool too_big;
        const char *capture;
        size_t capture_len;
        char *header;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
        struct xfer *x = ud;
        size_t n = size * nmemb;
        if (dbuf_add(&x->body, data, n) < 0) {
                x->too_big = true;
                return 0; /* makes curl fail with CURLE_WRITE_ERROR */
        }
        return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
        struct xfer *x = ud;
        size_t n = size * nmemb;
        if (!x->capture || n <= x->capture_len || n > HTTP_HEADER_MAX)
                return n;
        if (strncasecmp(data, x->capture, x->capture_len) != 0 || data[x->capture_len] != ':')
                return n;
        const char *v = data + x->capture_len + 1;
        const char *end = data + n;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
        free(x->header); /* a redirect may repeat it: the last one wins */
        x->header = xstrndup(v, (size_t)(end - v));
        return n;
}

static int curl_to_errno(CURLcode c) {
        switch (c) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
                return -EPROTO;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
                return -ECONNRESET;
        default:
                return -EIO;
        }
}

int http_request(const struct http_request *req, struct http_response *ret, char **reterr_msg) {
        pthread_once(&http_once, http_global_init);
        if (!req || !req->method || !req->url)
                return -EINVAL;

        CURL *c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        struct curl_slist *hdrs = NULL;
        FILE *upload = NULL;
        struct xfer x = { .body = DBUF_INIT(req->max_response ? req->max_response : HTTP_DEFAULT_MAX_RESPONSE),
                          .capture = req->capture_header,
                          .capture_len = req->capture_header ? strlen(req->capture_header) : 0 };
        char errbuf[CURL_ERROR_SIZE] = "";
        int r = 0;

        if (req->token) {
                _cleanup_free_ char *h = xasprintf("X-Auth-Token: %s", req->token);
                hdrs = curl_slist_append(hdrs, h);
        }
        for (size_t i = 0; req->headers && req->headers[i]; i++)
                hdrs = curl_slist_append(hdrs, req->headers[i]);
        hdrs = curl_slist_append(hdrs, "Accept: application/json");
        /* curl would otherwise wait a second for "100 Continue" before large bodies. */
        hdrs = curl_slist_append(hdrs, "Expect:");
        if (req->body || req->upload_path) {
                _cleanup_free_ char *h =
                        xasprintf("Content-Type: %s", req->content_type ? req->content_type : "application/json");
                hdrs = curl_slist_append(hdrs, h);
        }

        curl_easy_setopt(c, CURLOPT_URL, req->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 60000L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                         req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        if (req->cacert)
                curl_easy_setopt(c, CURLOPT_CAINFO, req->cacert);
        if (req->insecure) {
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }

        if (req->upload_path) {
                upload = fopen(req->upload_path, "re");
                struct stat st;
                if (!upload || fstat(fileno(upload), &st) < 0) {
                        r = negative_errno();
                        if (reterr_msg)
                                *reterr_msg = xasprintf("%s %s: cannot open %s: %s", req->method, req->url,
                                                        req->upload_path, strerror(-r));
                        goto finish;
                }
                curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(c, CURLOPT_READDATA, upload); /* default read function: fread */
                curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        } else if (req->body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        } else if (strcmp(req->method, "HEAD") == 0) {
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (strcmp(req->method, "GET") != 0) {
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        }

        CURLcode cc = curl_easy_perform(c);
        if (cc != CURLE_OK) {
                r = x.too_big ? -E2BIG : curl_to_errno(cc);
                if (reterr_msg)
                        *reterr_msg = x.too_big ? xasprintf("%s %s: response larger than %zu bytes", req->method,
                                                            req->url, x.body.max)
                                                : xasprintf("%s %s: %s", req->method, req->url,
                                                            errbuf[0] ? errbuf : curl_easy_strerror(cc));
                log_debug("http: %s %s failed: %s", req->method, req->url, curl_easy_strerror(cc));
                goto finish;
        }
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        log_debug("http: %s %s -> %ld (%zu bytes)", req->method, req->url, status, x.body.len);
        ret->status = status;
        ret->body = dbuf_take(&x.body, &ret->body_len);
        ret->header = TAKE_PTR(x.header);

finish:
        if (upload)
                fclose(upload);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        dbuf_free(&x.body);
        free(x.header);
        return r;
}

void http_response_done(struct http_response *r) {
        if (!r)
                return;
        free(r->body);
        free(r->header);
        r->body = r->header = NULL;
        r->body_len = 0;
}

bool http_status_retryable(long status) {
        return status >= 500 && status <= 599;
}
