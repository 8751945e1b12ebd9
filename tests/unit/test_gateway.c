/* test_gateway: the gateway's pieces that need no cluster -- the
 * Idempotency-Key table (gateway/idem.c) and the KO-reason table
 * (gateway/api.c).  The HTTP side runs against a real cluster in
 * integration/test_gateway. */
#include <string.h>

#include "gateway/api.h"
#include "gateway/idem.h"
#include "unit.h"

static const char *S1 = "0123456789abcdef0123456789abcdef";
static const char *S2 = "fedcba9876543210fedcba9876543210";

/* One seq per (session, key); a different request under the same key is
 * refused; keys expire after the ttl and the oldest go when full. */
TEST(idempotency_keys_map_onto_one_seq)
{
    idem_t *t = idem_new(3, 1000);
    uint64_t a, b, c, d;
    CHECK(idem_seq(t, S1, "k", 7, 100, &a) == 0);
    CHECK(idem_seq(t, S1, "k", 7, 200, &b) == 0);
    CHECK_EQ_U64(a, b);
    CHECK(idem_seq(t, S1, "k", 8, 200, &b) == -1); /* another request, same key */
    CHECK(idem_seq(t, S2, "k", 7, 200, &c) == 0);  /* another session: its own seq */
    CHECK(c > a);
    CHECK(idem_seq(t, S1, "k2", 7, 200, &d) == 0);
    CHECK(d > c);
    CHECK_EQ_U64(idem_size(t), 3);
    /* full: a fourth key drops the oldest (S1/k) */
    CHECK(idem_seq(t, S2, "k3", 7, 300, &d) == 0);
    CHECK_EQ_U64(idem_size(t), 3);
    CHECK(idem_seq(t, S1, "k", 7, 300, &b) == 0);
    CHECK(b != a); /* forgotten: a new seq */
    /* past the ttl every old key goes */
    CHECK(idem_seq(t, S1, "fresh", 1, 5000, &b) == 0);
    CHECK_EQ_U64(idem_size(t), 1);
    idem_destroy(&t);
    CHECK(t == NULL);
}

/* Every protocol status maps to an HTTP status: OK to 200, every KO to an
 * error, and the ones the contract says to retry to 503 or 504. */
TEST(ko_reasons_map_to_http)
{
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_OK), 200);
    for (int s = 1; s <= ZCART_STATUS_FORBIDDEN; s++)
        CHECK(api_http_status(s) >= 400 && api_http_status(s) <= 599);
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_OUT_OF_STOCK), 409);
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_UNKNOWN_PRODUCT), 404);
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_NO_FREE_CART), 503);
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_CART_UNAVAILABLE), 503);
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_EXPIRED), 504);
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_STORAGE_FULL), 507);
    CHECK_EQ_U64(api_http_status(ZCART_STATUS_BUSY), 503);
    CHECK_EQ_U64(api_http_status(99), 502); /* a status this gateway does not know */
}

int main(void)
{
    RUN(idempotency_keys_map_onto_one_seq);
    RUN(ko_reasons_map_to_http);
    return unit_report();
}
