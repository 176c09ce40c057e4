/* Subcommands of the portcullis binary. Each takes argv with argv[0] set to
 * the subcommand's name, handles its own --help, and returns the process
 * exit status: 0 success, 1 failure, 2 usage error. */
#ifndef PC_CLI_COMMANDS_H
#define PC_CLI_COMMANDS_H

int pc_cmd_serve(int argc, char **argv);
int pc_cmd_check(int argc, char **argv);
int pc_cmd_pki(int argc, char **argv);
int pc_cmd_version(int argc, char **argv);
int pc_cmd_client(int argc, char **argv);
int pc_cmd_keys(int argc, char **argv);
int pc_cmd_demo_api(int argc, char **argv);
int pc_cmd_quarantine(int argc, char **argv);

#define PC_EXIT_OK 0
#define PC_EXIT_FAIL 1
#define PC_EXIT_USAGE 2

#endif
