// Command mfactl is mfad's command line: accounts, devices, keys, tokens,
// audit and administration, with human tables by default and --json
// everywhere. It is built only on ipc/client and ipc/api.
package main
