/* test_proto: the ZCP/1 codec.  Every message id round-trips; every
 * truncation, bad header and over-limit field is refused cleanly. */
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"
#include "proto/status.h"
#include "unit.h"

static const uint8_t all_ids[] = {
    ZC_MSG_REQUEST, ZC_MSG_REPLY, ZC_MSG_STATUS, ZC_MSG_STATUS_REPLY, ZC_MSG_ADMIN,
    ZC_MSG_ADMIN_REPLY, ZC_MSG_HELLO, ZC_MSG_CART_REQUEST, ZC_MSG_CART_REPLY, ZC_MSG_RESET,
    ZC_MSG_RESET_DONE, ZC_MSG_CHECK, ZC_MSG_CHECK_REPLY,
};

/* A message with every field set to a recognisable value. */
static void fill(zc_msg_t *m, uint8_t id)
{
    zc_msg_init(m, id);
    m->corr = 0x0102030405060708ull;
    for (int i = 0; i < ZC_SESSION_LEN; i++)
        m->session[i] = (uint8_t)(0xA0 + i);
    m->seq = 42;
    m->op = ZC_OP_ADD;
    m->status = ZC_OUT_OF_STOCK;
    m->deadline = 1700000000123ull;
    strcpy(m->product, "apple");
    m->qty = 3;
    strcpy(m->cart, "cart1.2");
    m->generation = 9;
    strcpy(m->detail, "only 2 left");
    strcpy(m->node, "cart1");
    m->slot = 2;
    strcpy(m->command, "transfer-leader");
    zc_msg_add_item(m, "apple", 3);
    zc_msg_add_item(m, "pear", 1);
    zc_slotinfo_t s = {.slot = 1, .generation = 4, .reset_generation = 3, .n_items = 2};
    memcpy(s.session, m->session, ZC_SESSION_LEN);
    zc_msg_add_slot(m, &s);
    zc_msg_add_prop(m, "role", "%s", "leader");
    zc_msg_add_prop(m, "term", "%d", 7);
    m->replica = 3;
    m->term = 0x1122334455667788ull;
}

TEST(every_message_roundtrips)
{
    for (size_t i = 0; i < sizeof all_ids; i++) {
        zc_msg_t m, d;
        zc_wbuf_t w;
        const char *why;
        fill(&m, all_ids[i]);
        zc_wbuf_init(&w);
        CHECK(zc_msg_encode(&m, &w) == 0);
        zc_msg_init(&d, 0);
        CHECK(zc_msg_decode(&d, w.data, w.len, &why) == 0);
        CHECK_EQ_U64(d.id, all_ids[i]);
        if (all_ids[i] == ZC_MSG_REPLY) { /* who decided it travels with the answer */
            CHECK_EQ_U64(d.replica, 3);
            CHECK_EQ_U64(d.term, 0x1122334455667788ull);
        }
        /* Re-encoding the decoded message gives the same bytes. */
        zc_wbuf_t w2;
        zc_wbuf_init(&w2);
        CHECK(zc_msg_encode(&d, &w2) == 0);
        CHECK(w.len == w2.len && memcmp(w.data, w2.data, w.len) == 0);
        /* Every strict prefix is refused without crashing. */
        zc_msg_t t;
        zc_msg_init(&t, 0);
        for (size_t cut = 0; cut < w.len; cut++)
            CHECK(zc_msg_decode(&t, w.data, cut, &why) == -1 && why != NULL);
        /* One trailing byte is refused. */
        zc_wbuf_u8(&w, 0);
        CHECK(zc_msg_decode(&t, w.data, w.len, &why) == -1);
        zc_msg_reset(&t);
        zc_msg_reset(&m);
        zc_msg_reset(&d);
        zc_wbuf_clear(&w);
        zc_wbuf_clear(&w2);
    }
}

TEST(request_fields_survive)
{
    zc_msg_t m, d;
    zc_wbuf_t w;
    const char *why;
    fill(&m, ZC_MSG_CART_REPLY);
    zc_wbuf_init(&w);
    zc_msg_encode(&m, &w);
    zc_msg_init(&d, 0);
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == 0);
    CHECK_EQ_U64(d.corr, m.corr);
    CHECK_EQ_U64(d.slot, 2);
    CHECK(memcmp(d.session, m.session, ZC_SESSION_LEN) == 0);
    CHECK_EQ_U64(d.seq, 42);
    CHECK_EQ_U64(d.status, ZC_OUT_OF_STOCK);
    CHECK_STR(d.detail, "only 2 left");
    CHECK_EQ_U64(d.n_items, 2);
    CHECK_STR(d.items[1].product, "pear");
    CHECK_EQ_U64(d.items[1].qty, 1);
    /* Fields of other messages are not on the wire. */
    CHECK_STR(d.cart, "");
    CHECK_EQ_U64(d.generation, 0);
    zc_msg_reset(&m);
    zc_msg_reset(&d);
    zc_wbuf_clear(&w);
}

TEST(bad_headers_are_refused)
{
    zc_msg_t d;
    const char *why;
    zc_msg_init(&d, 0);
    const uint8_t bad_sig[] = {'X', 'C', 1, 3, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t bad_ver[] = {'Z', 'C', 2, 3, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t bad_id[] = {'Z', 'C', 1, 99, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t ok[] = {'Z', 'C', 1, 3, 0, 0, 0, 0, 0, 0, 0, 1};
    CHECK(zc_msg_decode(&d, bad_sig, sizeof bad_sig, &why) == -1 && strstr(why, "signature"));
    CHECK(zc_msg_decode(&d, bad_ver, sizeof bad_ver, &why) == -1 && strstr(why, "version"));
    CHECK(zc_msg_decode(&d, bad_id, sizeof bad_id, &why) == -1 && strstr(why, "unknown"));
    CHECK(zc_msg_decode(&d, ok, sizeof ok, &why) == 0);
    CHECK_EQ_U64(d.id, ZC_MSG_STATUS);
    CHECK_EQ_U64(d.corr, 1);
    CHECK(zc_msg_decode(&d, NULL, 0, &why) == -1);
}

TEST(over_limit_fields_are_refused)
{
    /* A REPLY whose item count claims more than the limit. */
    zc_msg_t m, d;
    zc_wbuf_t w;
    const char *why;
    zc_msg_init(&m, ZC_MSG_CHECK);
    m.corr = 5;
    zc_wbuf_init(&w);
    zc_msg_encode(&m, &w);
    /* Patch the product length octet (after 4 header + 8 corr) to 65 with 65 bytes. */
    zc_wbuf_t big;
    zc_wbuf_init(&big);
    zc_wbuf_bytes(&big, w.data, 12);
    zc_wbuf_u8(&big, 65);
    for (int i = 0; i < 65; i++)
        zc_wbuf_u8(&big, 'a');
    zc_wbuf_u32(&big, 1);
    zc_wbuf_u64(&big, 0);
    zc_msg_init(&d, 0);
    CHECK(zc_msg_decode(&d, big.data, big.len, &why) == -1);
    /* Item list count over ZC_ITEMS_MAX. */
    zc_wbuf_reset(&big);
    zc_msg_init(&m, ZC_MSG_REPLY);
    zc_wbuf_reset(&w);
    zc_msg_encode(&m, &w);
    zc_wbuf_bytes(&big, w.data, w.len - 2 - 16); /* items count, then replica and term */
    zc_wbuf_u16(&big, ZC_ITEMS_MAX + 1);
    zc_wbuf_u64(&big, 0);
    zc_wbuf_u64(&big, 0);
    CHECK(zc_msg_decode(&d, big.data, big.len, &why) == -1);
    /* A NUL inside a string is refused. */
    zc_wbuf_reset(&big);
    zc_msg_init(&m, ZC_MSG_STATUS_REPLY);
    zc_msg_add_prop(&m, "k", "v");
    zc_wbuf_reset(&w);
    zc_msg_encode(&m, &w);
    w.data[w.len - 1] = 0; /* value "v" -> "\0" */
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == -1);
    zc_msg_reset(&m);
    zc_wbuf_clear(&w);
    zc_wbuf_clear(&big);
}

TEST(random_bytes_never_crash)
{
    unsigned seed = 1;
    uint8_t buf[128];
    zc_msg_t d;
    const char *why;
    zc_msg_init(&d, 0);
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(seed % sizeof buf);
        for (size_t j = 0; j < n; j++) {
            seed = seed * 1103515245u + 12345u;
            buf[j] = (uint8_t)(seed >> 16);
        }
        if (n >= 4 && (i & 1)) { /* half the time with a valid header */
            buf[0] = 'Z';
            buf[1] = 'C';
            buf[2] = 1;
            buf[3] = all_ids[seed % sizeof all_ids];
        }
        if (zc_msg_decode(&d, buf, n, &why) == 0)
            accepted++;
        zc_msg_reset(&d);
        seed = seed * 1103515245u + 12345u;
    }
    CHECK(accepted < 20000);
}

TEST(product_and_session_rules)
{
    CHECK(zc_product_valid("apple"));
    CHECK(zc_product_valid("sku-123_X"));
    CHECK(!zc_product_valid(""));
    CHECK(!zc_product_valid("has space"));
    CHECK(!zc_product_valid("a,b"));
    CHECK(!zc_product_valid("tab\t"));
    char long65[66];
    memset(long65, 'x', 65);
    long65[65] = 0;
    CHECK(!zc_product_valid(long65));
    long65[64] = 0;
    CHECK(zc_product_valid(long65));

    uint8_t s[16], p[16];
    char hex[33];
    zc_session_random(s);
    CHECK(!zc_session_is_zero(s));
    zc_session_hex(s, hex);
    CHECK_EQ_U64(strlen(hex), 32);
    CHECK(zc_session_parse(hex, p) && memcmp(s, p, 16) == 0);
    CHECK(!zc_session_parse("00000000000000000000000000000000", p)); /* zero is reserved */
    CHECK(!zc_session_parse("abc", p));
    CHECK(!zc_session_parse("zz000000000000000000000000000001", p));
}

/* Encode a REQUEST whose product field is written raw (len8 + octets). */
static void raw_request(zc_wbuf_t *w, const char *product, size_t plen)
{
    zc_wbuf_init(w);
    zc_wbuf_u8(w, 'Z');
    zc_wbuf_u8(w, 'C');
    zc_wbuf_u8(w, 1);
    zc_wbuf_u8(w, ZC_MSG_REQUEST);
    for (int i = 0; i < ZC_SESSION_LEN; i++)
        zc_wbuf_u8(w, (uint8_t)(0xB0 + i));
    zc_wbuf_u64(w, 77);        /* seq */
    zc_wbuf_u8(w, ZC_OP_ADD);  /* op */
    zc_wbuf_u64(w, 0);         /* deadline */
    zc_wbuf_u8(w, (uint8_t)plen);
    zc_wbuf_bytes(w, product, plen);
    zc_wbuf_u32(w, 1);         /* qty */
}

/* Issue 11, gap 12: the detail of a refused frame names the real reason. */
TEST(decode_names_what_is_wrong)
{
    zc_msg_t d;
    zc_wbuf_t w;
    const char *why;
    char p65[65];
    memset(p65, 'p', sizeof p65);
    zc_msg_init(&d, 0);
    raw_request(&w, "apple", 5);
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == 0);
    CHECK(zc_msg_decode(&d, w.data, w.len - 1, &why) == -1);
    CHECK_STR(why, "truncated message");
    zc_wbuf_u8(&w, 0);
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == -1);
    CHECK_STR(why, "trailing bytes after the last field");
    zc_wbuf_clear(&w);
    raw_request(&w, p65, 65);
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == -1);
    CHECK_STR(why, "product longer than 64 octets");
    zc_wbuf_clear(&w);
    raw_request(&w, "a\0b", 3);
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == -1);
    CHECK_STR(why, "NUL octet inside product");
    zc_wbuf_clear(&w);
    /* A str whose length runs past the frame is a truncation. */
    raw_request(&w, "apple", 5);
    w.data[4 + 16 + 8 + 1 + 8] = 60; /* within the limit, past the end */
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == -1);
    CHECK_STR(why, "truncated message");
    zc_wbuf_clear(&w);
    /* A node name over 32 octets, a list over its limit. */
    zc_wbuf_init(&w);
    zc_wbuf_bytes(&w, "ZC\x01\x10", 4);
    zc_wbuf_u8(&w, 33);
    zc_wbuf_bytes(&w, p65, 33);
    zc_wbuf_u16(&w, 0);
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == -1);
    CHECK_STR(why, "node longer than 32 octets");
    zc_wbuf_clear(&w);
    zc_wbuf_init(&w);
    zc_wbuf_bytes(&w, "ZC\x01\x10", 4);
    zc_wbuf_u8(&w, 1);
    zc_wbuf_u8(&w, 'n');
    zc_wbuf_u16(&w, 16385);
    CHECK(zc_msg_decode(&d, w.data, w.len, &why) == -1);
    CHECK_STR(why, "slots over 16384 entries");
    zc_wbuf_clear(&w);
    zc_msg_reset(&d);
}

/* Issue 11, gap 1: a malformed REQUEST's session and seq are readable. */
TEST(peek_request_reads_session_and_seq)
{
    zc_wbuf_t w;
    uint8_t s[ZC_SESSION_LEN];
    uint64_t seq = 0;
    raw_request(&w, "a\0b", 3); /* does not decode */
    CHECK(zc_msg_peek_request(w.data, w.len, s, &seq));
    CHECK_EQ_U64(seq, 77);
    CHECK_EQ_U64(s[0], 0xB0);
    CHECK_EQ_U64(s[15], 0xBF);
    CHECK(zc_msg_peek_request(w.data, 4 + 16 + 8, s, &seq));     /* just the two fields */
    CHECK(!zc_msg_peek_request(w.data, 4 + 16 + 7, s, &seq));    /* seq cut short */
    w.data[3] = ZC_MSG_STATUS;
    CHECK(!zc_msg_peek_request(w.data, w.len, s, &seq));         /* not a request */
    w.data[3] = ZC_MSG_REQUEST;
    w.data[2] = 2;
    CHECK(!zc_msg_peek_request(w.data, w.len, s, &seq));         /* another version */
    CHECK(!zc_msg_peek_request(NULL, 0, s, &seq));
    zc_wbuf_clear(&w);
}

/* Issue 11, gap 8: node names are [A-Za-z0-9_-], 1..32 octets. */
TEST(node_name_rules)
{
    CHECK(zc_node_name_valid("cart1"));
    CHECK(zc_node_name_valid("A_b-9"));
    CHECK(zc_node_name_valid("12345678901234567890123456789012"));
    CHECK(!zc_node_name_valid("123456789012345678901234567890123"));
    CHECK(!zc_node_name_valid(""));
    CHECK(!zc_node_name_valid("bad.name"));
    CHECK(!zc_node_name_valid("a b"));
    CHECK(!zc_node_name_valid("caf\xc3\xa9"));
}

TEST(status_table)
{
    CHECK_STR(zc_status_name(ZC_OK), "OK");
    CHECK_STR(zc_status_name(ZC_NO_FREE_CART), "NO_FREE_CART");
    CHECK_EQ_U64(zc_status_parse("STOCK_TIMEOUT"), ZC_STOCK_TIMEOUT);
    CHECK(zc_status_parse("NOPE") == -1);
    CHECK_STR(zc_status_name(200), "UNKNOWN");
    for (int i = 0; i < ZC_STATUS_COUNT; i++)
        CHECK_EQ_U64(zc_status_parse(zc_status_name(i)), i);
}

TEST(qty_limit_text_matches)
{
    CHECK_EQ_U64(strtoull(ZC_QTY_MAX_TEXT, NULL, 10), ZC_QTY_MAX);
}

int main(void)
{
    RUN(every_message_roundtrips);
    RUN(request_fields_survive);
    RUN(bad_headers_are_refused);
    RUN(over_limit_fields_are_refused);
    RUN(random_bytes_never_crash);
    RUN(product_and_session_rules);
    RUN(decode_names_what_is_wrong);
    RUN(peek_request_reads_session_and_seq);
    RUN(node_name_rules);
    RUN(status_table);
    RUN(qty_limit_text_matches);
    return unit_report();
}
