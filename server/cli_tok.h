/* server/cli_tok.h: `deltaserve tokenize` and `deltaserve detokenize`.
 *
 * defines: cli_tokenize_main, cli_detokenize_main
 *
 * Threads: main thread; each runs one command and returns its exit status.
 *
 *   deltaserve tokenize --model DIR [--add-special-tokens]
 *       reads UTF-8 text on stdin (all of it, bytes as-is: invalid UTF-8 is
 *       replaced by U+FFFD as docs/api.md says), writes the ids as one JSON
 *       array line on stdout, e.g. [4513,1774,3080].
 *   deltaserve detokenize --model DIR [--skip-special-tokens]
 *       reads a JSON array of ids (or {"tokens": [...]} / {"ids": [...]}) on
 *       stdin, writes the decoded text on stdout, with no added newline.
 *
 * --model takes a model directory (its tokenizer.json is used) or the path of
 * a tokenizer.json file itself.
 */
#ifndef DS_SERVER_CLI_TOK_H
#define DS_SERVER_CLI_TOK_H

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is the first option (main passes argv after the command name).
 * Returns 0 on success, 1 on a load/input error (message on stderr), 2 on a
 * usage error. */
int cli_tokenize_main(int argc, char **argv);
int cli_detokenize_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
