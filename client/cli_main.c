/* cli_main: the zcart executable; all of it is zcli_run (cli.c). */
#include <stdio.h>

#include "client/cli.h"

int main(int argc, char **argv) { return zcli_run(argc, argv, stdin, stdout, stderr); }
