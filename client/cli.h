/* cli: the zcart command line, as a function (cli_main.c is its main), so
 * unit tests can run whole commands in-process against fake replicas. */
#ifndef ZC_CLIENT_CLI_H
#define ZC_CLIENT_CLI_H

#include <stdio.h>

/* Exit statuses of the zcart command (a contract, see --help). */
enum { ZCLI_EXIT_OK = 0, ZCLI_EXIT_KO = 1, ZCLI_EXIT_USAGE = 2, ZCLI_EXIT_UNREACHABLE = 3 };

/* Run `zcart argv[1..]`: results on out, diagnostics on err, shell
 * commands read from in.  $ZCART_BROKERS and $ZCART_SESSION supply the
 * defaults of --brokers and --session.  Returns the exit status. */
int zcli_run(int argc, char **argv, FILE *in, FILE *out, FILE *err);

#endif
