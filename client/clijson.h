/* clijson: everything the zcart CLI prints as a result, in text or JSON.
 *
 * The CLI's stdout is a contract (tests/integration parses it): one result
 * per command -- one line of text, or exactly one JSON object on one line --
 * and nothing else; diagnostics go to stderr.  Keeping every result format
 * in this one file keeps that contract in one place and unit-testable.
 *
 * JSON result objects:
 *   cart op    {"ok","op","session","new_session","seq","reason","detail",
 *               "status"(KO only),"cart","generation","items":[{"product","qty"}],
 *               "replica_id","term","attempts"}
 *              cart and generation are null when the session has no cart;
 *              replica_id and term say who decided the answer (REPLY replica
 *              and term, docs/protocol.md §3; term 0: no ready leader);
 *              attempts counts the tries libzcart sent, retries included.
 *   no answer  {"ok":false,"op","session","new_session","seq",
 *               "reason":"UNREACHABLE","detail","in_doubt"}
 *   admin      {"ok","op":"admin","command","reason","detail"} (+ in_doubt
 *              when there was no answer)
 *   usage      {"ok":false,"reason":"USAGE","detail"}
 *   status     {"ok","replicas":[...],"carts":{"total","free","assigned",
 *               "draining"}|null,"leader":endpoint|null} (+ reason/detail
 *               when no replica answered)
 * A replica object starts with id, endpoint, role, term, commit_index,
 * applied_index, digest, reachable, contacted (the endpoint asked), then
 * rtt_us (reachable) or error (not), then every other prop received in
 * order.  Prop values that are decimal integers become JSON numbers, except
 * the text keys (endpoint, role, digest, leader_endpoint); unknown values of
 * an unreachable replica are null. */
#ifndef ZC_CLIENT_CLIJSON_H
#define ZC_CLIENT_CLIJSON_H

#include <stdbool.h>
#include <stdio.h>

#include "client/zcart.h"

/* Print the result of a cart operation.  op is ZC_OP_*; session is the hex
 * id used; new_session: the command created it (text mode then prints a
 * line "session <hex>" first). */
void zcli_print_op(FILE *out, bool json, int op, const char *session, bool new_session, int rc,
                   const zcart_result_t *r);
/* Print the answer to an admin command (rc from zcart_admin). */
void zcli_print_admin(FILE *out, bool json, const char *command, int rc, const zcart_result_t *r);
/* Print a status answer (rc from zcart_status). */
void zcli_print_status(FILE *out, bool json, int rc, const zcart_status_t *st);
/* Print a usage error as a result: JSON {"ok":false,"reason":"USAGE",...}
 * or the text line "USAGE: detail". */
void zcli_print_usage(FILE *out, bool json, const char *detail);
/* Exit status of a cart op: 0 OK, 1 KO, 2 invalid, 3 no answer. */
int zcli_exit_code(int rc, const zcart_result_t *r);
/* True if s is a canonical decimal integer ("0", "42", "-7"; no sign on
 * zero, no leading zeros) that fits 64 bits. */
bool zcli_is_integer(const char *s);

#endif
