/* dump: see dump.h.  The object printed:
 *
 *   {"node": NODE (only with --name),
 *    "slots": [{"slot", "cart": "NODE.SLOT" (only with --name),
 *               "owner": hex|null, "generation", "reset_generation",
 *               "items": [{"product", "qty"}]}]}
 *
 * A slot the store has never written shows as ownerless, generation 0 and
 * empty, exactly what the node itself would read for it. */
#include "cart/dump.h"

#include <stdio.h>

#include "cart/store.h"
#include "lib/json.h"
#include "proto/msg.h"

static int dump_item(const char *product, uint32_t qty, void *arg)
{
    zc_json_t *j = arg;
    zc_json_obj(j);
    zc_json_kstr(j, "product", product);
    zc_json_ku64(j, "qty", qty);
    zc_json_end(j);
    return 0;
}

int cart_dump_state(const char *data_dir, unsigned n_slots, const char *node)
{
    char err[4600];
    store_t *s = store_open_readonly(data_dir, n_slots, err, sizeof err);
    if (s == NULL) {
        fprintf(stderr, "zcart-cart: --dump-state: %s\n", err);
        return 1;
    }
    zc_json_t j;
    int rc = 0;
    zc_json_init(&j);
    zc_json_obj(&j);
    if (node)
        zc_json_kstr(&j, "node", node);
    zc_json_key(&j, "slots");
    zc_json_arr(&j);
    for (unsigned i = 0; i < n_slots && rc == 0; i++) {
        store_slot_t sl;
        char hex[2 * ZC_SESSION_LEN + 1];
        if (store_get_slot(s, (uint16_t)i, &sl) != 0) {
            rc = -1;
            break;
        }
        zc_json_obj(&j);
        zc_json_ku64(&j, "slot", i);
        if (node) {
            char cart[ZC_CART_MAX + 8];
            snprintf(cart, sizeof cart, "%s.%u", node, i);
            zc_json_kstr(&j, "cart", cart);
        }
        zc_json_key(&j, "owner");
        if (zc_session_is_zero(sl.owner)) {
            zc_json_null(&j);
        } else {
            zc_session_hex(sl.owner, hex);
            zc_json_string(&j, hex);
        }
        zc_json_ku64(&j, "generation", sl.generation);
        zc_json_ku64(&j, "reset_generation", sl.reset_generation);
        zc_json_key(&j, "items");
        zc_json_arr(&j);
        rc = store_each_item(s, (uint16_t)i, dump_item, &j);
        zc_json_end(&j);
        zc_json_end(&j);
    }
    zc_json_end(&j);
    zc_json_end(&j);
    store_close(&s);
    if (rc != 0) {
        fprintf(stderr, "zcart-cart: --dump-state: %s: a record does not decode or the "
                        "database could not be read (corrupt store?)\n", data_dir);
        zc_json_clear(&j);
        return 1;
    }
    puts(zc_json_str(&j));
    zc_json_clear(&j);
    return fflush(stdout) == 0 ? 0 : 1;
}
