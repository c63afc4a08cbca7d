/*
 * pam_mfad: the workstation sign-in helper of mfad. A thin client of the
 * mfad socket: every decision is mfad's; this module asks, prompts through
 * the PAM conversation and relays. Fails closed: without an answer from
 * mfad a sign-in fails (unless nodaemonok and mfad is not running at all).
 *
 * Options: socket=PATH server_user=NAME nouserok nodaemonok methods=fido,totp
 *          keyfirst timeout=SECONDS cue cue_prompt=TEXT debug
 *
 * The common case costs one request: the code prompt comes first, then
 * POST /v1/authenticate; the device list is asked only when the answer
 * says the code cannot be it (no_active_device: keys only, or none), or
 * before any prompt with keyfirst, nouserok or methods=fido.
 *
 * Codes, PINs and recovery tokens never reach a log line or a message.
 */
#define _GNU_SOURCE
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "mfad_client.h"

#define EXPORT __attribute__((visibility("default")))

#define DEFAULT_SOCKET "/run/mfad/mfad.sock"
#define DEFAULT_TIMEOUT_S 30
#define IO_TIMEOUT_MS 10000
#define CODE_MAX 128        /* a typed code, PIN or temporary code */
#define NAME_MAX_LEN 64
#define BODY_MAX 1024       /* a request body pam_mfad builds */
#define PATH_MAX_LEN 512

#define DEFAULT_SERVER_USER "mfad"
#define USER_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

struct opts {
	char socket[108];
	char cue_prompt[128];
	char server_user[33];   /* besides root, who may serve the socket ("": mfad, if it exists) */
	int nouserok, nodaemonok, cue, debug, keyfirst;
	int fido, otp;          /* methods allowed */
	int timeout_s;
};

struct ctx {
	pam_handle_t *pamh;
	struct opts o;
	struct mfad_client c;
	const char *user;
	char uesc[3 * NAME_MAX_LEN + 1];  /* the user name, path-escaped */
	int owner, ever_enrolled;
	int n_fido, n_otp, n_active;      /* active devices (n_fido, n_otp after methods=) */
	int cued;
	int account_loaded, devices_loaded;
	int silent;                       /* PAM_SILENT: no informational messages */
};

/* Outcomes that are not a PAM result yet. */
#define FIDO_NOKEY (-1000)     /* no key there or touched: another method may follow */
#define PASS_NODAEMON (-1001)  /* mfad is not running and nodaemonok is set */
#define NEED_LIST (-1002)      /* the code cannot be it: the device list decides */

static void parse_opts(pam_handle_t *pamh, int argc, const char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	strcpy(o->socket, DEFAULT_SOCKET);
	strcpy(o->cue_prompt, "Touch your security key");
	o->fido = o->otp = 1;
	o->timeout_s = DEFAULT_TIMEOUT_S;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "socket=", 7) == 0) {
			if (strlen(a + 7) >= sizeof(o->socket) || a[7] != '/')
				pam_syslog(pamh, LOG_ERR, "socket= must be an absolute path shorter than %zu bytes; using %s",
					   sizeof(o->socket), o->socket);
			else
				strcpy(o->socket, a + 7);
		} else if (strncmp(a, "server_user=", 12) == 0) {
			const char *v = a + 12;
			size_t n = strlen(v);
			if (n == 0 || n >= sizeof(o->server_user) || strspn(v, USER_CHARS) != n) {
				pam_syslog(pamh, LOG_ERR, "server_user= wants a user name; only root may serve the socket");
				strcpy(o->server_user, "root"); /* fail closed */
			} else {
				strcpy(o->server_user, v);
			}
		} else if (strcmp(a, "keyfirst") == 0) {
			o->keyfirst = 1;
		} else if (strcmp(a, "nouserok") == 0) {
			o->nouserok = 1;
		} else if (strcmp(a, "nodaemonok") == 0) {
			o->nodaemonok = 1;
		} else if (strcmp(a, "cue") == 0) {
			o->cue = 1;
		} else if (strncmp(a, "cue_prompt=", 11) == 0) {
			snprintf(o->cue_prompt, sizeof(o->cue_prompt), "%s", a + 11);
		} else if (strcmp(a, "debug") == 0) {
			o->debug = 1;
		} else if (strncmp(a, "timeout=", 8) == 0) {
			char *end;
			long t = strtol(a + 8, &end, 10);
			if (*end || t < 1 || t > 3600)
				pam_syslog(pamh, LOG_ERR, "timeout= wants 1..3600 seconds; using %d", o->timeout_s);
			else
				o->timeout_s = (int)t;
		} else if (strncmp(a, "methods=", 8) == 0) {
			char buf[128];
			snprintf(buf, sizeof(buf), "%s", a + 8);
			o->fido = o->otp = 0;
			for (char *save = NULL, *m = strtok_r(buf, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
				if (strcmp(m, "fido") == 0)
					o->fido = 1;
				else if (strcmp(m, "totp") == 0 || strcmp(m, "otp") == 0 || strcmp(m, "hardware-otp") == 0)
					o->otp = 1;
				else
					pam_syslog(pamh, LOG_ERR, "methods=: unknown method \"%s\" ignored", m);
			}
		} else {
			pam_syslog(pamh, LOG_ERR, "unknown option \"%s\" ignored", a);
		}
	}
}

#define DEBUG(x, ...) do { if ((x)->o.debug) pam_syslog((x)->pamh, LOG_DEBUG, __VA_ARGS__); } while (0)

/* One conversation message. With out, the answer is copied (bounded) and
 * the conversation's copy wiped. */
static int converse(struct ctx *x, int style, const char *text, char *out, size_t cap)
{
	const struct pam_conv *pc = NULL;
	if (pam_get_item(x->pamh, PAM_CONV, (const void **)&pc) != PAM_SUCCESS || !pc || !pc->conv)
		return PAM_CONV_ERR;
	struct pam_message m = { .msg_style = style, .msg = text };
	const struct pam_message *mp = &m;
	struct pam_response *r = NULL;
	int rc = pc->conv(1, &mp, &r, pc->appdata_ptr);
	if (rc == PAM_SUCCESS && out) {
		if (!r || !r->resp || strlen(r->resp) >= cap)
			rc = PAM_CONV_ERR;
		else
			strcpy(out, r->resp);
	}
	if (r) {
		if (r->resp) {
			explicit_bzero(r->resp, strlen(r->resp));
			free(r->resp);
		}
		free(r);
	}
	return rc == PAM_SUCCESS ? PAM_SUCCESS : PAM_CONV_ERR;
}

static void say(struct ctx *x, int style, const char *text)
{
	if (x->silent && style == PAM_TEXT_INFO)
		return;
	converse(x, style, text, NULL, 0);
}

/* Prompts for a secret (echo off). */
static int ask(struct ctx *x, const char *prompt, char *out, size_t cap)
{
	int rc = converse(x, PAM_PROMPT_ECHO_OFF, prompt, out, cap);
	if (rc != PAM_SUCCESS) {
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: conversation ended (cancelled or closed)", x->user);
		return rc;
	}
	/* Surrounding blanks go; control characters are refused. */
	size_t n = strlen(out), b = 0;
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		out[--n] = '\0';
	while (out[b] == ' ' || out[b] == '\t')
		b++;
	memmove(out, out + b, n - b + 1);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			explicit_bzero(out, cap);
			say(x, PAM_ERROR_MSG, "That is not a code.");
			return PAM_AUTH_ERR;
		}
	return PAM_SUCCESS;
}

/* Builds {"k1":"v1",...} from pairs; NULL values are skipped; "true"/"false"
 * given as raw values with a leading '=' ("=true"). */
static int build(char *out, size_t cap, ...)
{
	va_list ap;
	size_t p = 0;
	int first = 1, rc = 0;
	va_start(ap, cap);
	out[p++] = '{';
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		if (!v)
			continue;
		int raw = v[0] == '=';
		size_t need = strlen(k) + 6;
		if (p + need >= cap) {
			rc = -1;
			break;
		}
		p += (size_t)sprintf(out + p, "%s\"%s\":%s", first ? "" : ",", k, raw ? "" : "\"");
		first = 0;
		if (raw) {
			if (p + strlen(v + 1) >= cap) {
				rc = -1;
				break;
			}
			strcpy(out + p, v + 1);
			p += strlen(v + 1);
		} else if (mfad_json_escape(out, cap, &p, v) < 0 || p + 2 >= cap) {
			rc = -1;
			break;
		} else {
			out[p++] = '"';
		}
	}
	va_end(ap);
	if (rc == 0 && p + 2 < cap) {
		out[p++] = '}';
		out[p] = '\0';
		return 0;
	}
	explicit_bzero(out, cap);
	return -1;
}

/* Who may serve the socket besides root: the server_user= (default: the
 * mfad user, when there is one). Looked up only when the socket is not
 * served by root, so the common case reads no user database. */
static int peer_ok(struct mfad_client *c, uid_t uid)
{
	struct ctx *x = c->ctx;
	const char *name = x->o.server_user[0] ? x->o.server_user : DEFAULT_SERVER_USER;
	struct passwd *pw = pam_modutil_getpwnam(x->pamh, name);
	if (!pw) {
		if (x->o.server_user[0])
			pam_syslog(x->pamh, LOG_ERR, "server_user=%s: no such user; only root may serve the socket", name);
		return 0;
	}
	return pw->pw_uid == uid;
}

/* Logs a failed exchange with mfad and returns the PAM result for it. */
static int unreachable(struct ctx *x, int rc, const char *what)
{
	if (rc == MFAD_EPEER) {
		/* Never "not running": something else holds mfad's socket. */
		pam_syslog(x->pamh, LOG_CRIT,
			   "user %s: %s: socket %s is served by uid %ld (pid %ld), neither root nor the service user %s; "
			   "failing closed",
			   x->user, what, x->o.socket, x->c.peer_uid == (uid_t)-1 ? -1L : (long)x->c.peer_uid,
			   (long)x->c.peer_pid, x->o.server_user[0] ? x->o.server_user : DEFAULT_SERVER_USER);
		say(x, PAM_ERROR_MSG, "The MFA service cannot be trusted (its socket is not served by mfad): sign-in "
				      "refused. Tell an administrator.");
		return PAM_AUTHINFO_UNAVAIL;
	}
	if (rc == MFAD_ECONNECT && x->o.nodaemonok) {
		pam_syslog(x->pamh, LOG_WARNING, "user %s: %s: %s; passing because of nodaemonok", x->user, what,
			   mfad_strerror(rc));
		return PAM_SUCCESS;
	}
	pam_syslog(x->pamh, LOG_ERR, "user %s: %s: %s (socket %s); failing closed", x->user, what, mfad_strerror(rc),
		   x->o.socket);
	return PAM_AUTHINFO_UNAVAIL;
}

static const char *code_of(struct mfad_answer *a)
{
	return a->code ? a->code : "unknown";
}

/* Looks up the account: its kind and whether it ever had a device. Only
 * needed off the common path (no active device, a lost device). */
static int load_account(struct ctx *x, int *no_account)
{
	char path[PATH_MAX_LEN];
	struct mfad_answer a;
	*no_account = 0;
	if (x->account_loaded)
		return PAM_SUCCESS;
	snprintf(path, sizeof(path), "/v1/accounts/%s", x->uesc);
	int rc = mfad_call(&x->c, "GET", path, NULL, &a);
	if (rc != MFAD_OK)
		return unreachable(x, rc, "account lookup") == PAM_SUCCESS ? PASS_NODAEMON : PAM_AUTHINFO_UNAVAIL;
	if (a.status == 404 && a.code && strcmp(a.code, "not_found") == 0) {
		mfad_answer_free(&a);
		*no_account = 1;
		return PAM_SUCCESS;
	}
	if (a.status != 200 || !a.body) {
		pam_syslog(x->pamh, LOG_ERR, "user %s: account lookup refused: HTTP %d %s", x->user, a.status, code_of(&a));
		mfad_answer_free(&a);
		return PAM_AUTHINFO_UNAVAIL;
	}
	const char *kind = mfad_str(a.body, "kind");
	x->owner = kind && strcmp(kind, "owner") == 0;
	x->ever_enrolled = mfad_bool(a.body, "ever_enrolled");
	x->account_loaded = 1;
	mfad_answer_free(&a);
	return PAM_SUCCESS;
}

/* Lists the account's devices (404: no account). PAM_SUCCESS to go on,
 * PASS_NODAEMON, or a failure. */
static int load_devices(struct ctx *x, int *no_account)
{
	char path[PATH_MAX_LEN];
	struct mfad_answer a;
	*no_account = 0;
	snprintf(path, sizeof(path), "/v1/accounts/%s/devices", x->uesc);
	int rc = mfad_call(&x->c, "GET", path, NULL, &a);
	if (rc != MFAD_OK)
		return unreachable(x, rc, "device list") == PAM_SUCCESS ? PASS_NODAEMON : PAM_AUTHINFO_UNAVAIL;
	if (a.status == 404 && a.code && strcmp(a.code, "not_found") == 0) {
		mfad_answer_free(&a);
		*no_account = 1;
		return PAM_SUCCESS;
	}
	json_object *devs;
	if (a.status != 200 || !json_object_object_get_ex(a.body, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array)) {
		pam_syslog(x->pamh, LOG_ERR, "user %s: device list refused: HTTP %d %s", x->user, a.status, code_of(&a));
		mfad_answer_free(&a);
		return PAM_AUTHINFO_UNAVAIL;
	}
	x->devices_loaded = 1;
	size_t n = json_object_array_length(devs);
	for (size_t i = 0; i < n && i < 64; i++) {
		json_object *d = json_object_array_get_idx(devs, i);
		const char *type = mfad_str(d, "type"), *state = mfad_str(d, "state");
		if (!type || !state || strcmp(state, "active") != 0)
			continue;
		x->n_active++;
		if (strcmp(type, "fido") == 0 && x->o.fido)
			x->n_fido++;
		else if ((strcmp(type, "totp") == 0 || strcmp(type, "hardware-otp") == 0) && x->o.otp)
			x->n_otp++;
	}
	mfad_answer_free(&a);
	DEBUG(x, "user %s: active devices %d (fido %d, otp %d usable)", x->user, x->n_active, x->n_fido, x->n_otp);
	return PAM_SUCCESS;
}

/* Maps a refused authentication to a message, a log line and a result. */
static int refused(struct ctx *x, struct mfad_answer *a, const char *what)
{
	const char *code = code_of(a);
	long long retry = mfad_int(a->body, "retry_after", 0);
	if (a->body && !retry) {
		json_object *err;
		if (json_object_object_get_ex(a->body, "error", &err))
			retry = mfad_int(err, "retry_after", 0);
	}
	pam_syslog(x->pamh, LOG_NOTICE, "user %s: %s refused by mfad: %s", x->user, what, code);
	if (strcmp(code, "retry_later") == 0 || strcmp(code, "locked_out") == 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Too many failed attempts. Try again in %lld seconds%s.", retry > 0 ? retry : 1,
			 code[0] == 'l' ? ", or ask an administrator to unlock the account" : "");
		say(x, PAM_ERROR_MSG, msg);
		return code[0] == 'l' ? PAM_MAXTRIES : PAM_AUTH_ERR;
	}
	if (strcmp(code, "invalid_code") == 0)
		say(x, PAM_ERROR_MSG, "Invalid code.");
	else if (strcmp(code, "code_already_used") == 0)
		say(x, PAM_ERROR_MSG, "That code was already used. Wait for the next code and sign in again.");
	else if (strcmp(code, "account_disabled") == 0)
		say(x, PAM_ERROR_MSG, "This account is disabled. Ask an administrator.");
	else if (strcmp(code, "permission_denied") == 0)
		say(x, PAM_ERROR_MSG, "This account may not sign in.");
	return PAM_AUTH_ERR;
}

static int ok_result(struct ctx *x, struct mfad_answer *a, const char *how)
{
	if (a->status == 200 && mfad_bool(a->body, "ok")) {
		DEBUG(x, "user %s: signed in with %s", x->user, how);
		return 1;
	}
	return 0;
}

static int sign_in_with_code(struct ctx *x, const char *code, const char *next, int retry);

/* "Lost your device?": owners recover with e-mail and phone codes;
 * members are sent to an administrator. */
static int lost_device(struct ctx *x)
{
	char path[PATH_MAX_LEN], body[BODY_MAX], code[CODE_MAX], id[96], token[512];
	struct mfad_answer a;
	int rc, res = PAM_AUTH_ERR, no_account;
	if ((rc = load_account(x, &no_account)) != PAM_SUCCESS)
		return rc == PASS_NODAEMON ? PAM_AUTH_ERR : rc;
	if (no_account)
		return PAM_AUTH_ERR;
	if (!x->owner) {
		say(x, PAM_ERROR_MSG,
		    "Lost your device? Ask an administrator to deactivate it and give you a temporary access code, "
		    "then type that code when asked for one.");
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: lost device reported at sign-in; member accounts need an admin",
			   x->user);
		return PAM_AUTH_ERR;
	}
	if (build(body, sizeof(body), "account", x->user, NULL) < 0)
		return PAM_AUTH_ERR;
	if ((rc = mfad_call(&x->c, "POST", "/v1/recovery", body, &a)) != MFAD_OK)
		return unreachable(x, rc, "recovery") == PAM_SUCCESS ? PAM_AUTH_ERR : PAM_AUTHINFO_UNAVAIL;
	const char *rid = mfad_str(a.body, "id");
	if (a.status / 100 != 2 || !rid || strlen(rid) >= sizeof(id) || strspn(rid, "abcdefghijklmnopqrstuvwxyz"
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(rid)) {
		if (a.code && strcmp(a.code, "recovery_needs_admin") == 0)
			say(x, PAM_ERROR_MSG, "Only an administrator can help: ask for a temporary access code.");
		else if (a.code && (strcmp(a.code, "retry_later") == 0 || strcmp(a.code, "locked_out") == 0)) {
			rc = refused(x, &a, "recovery");
			mfad_answer_free(&a);
			return rc;
		} else
			say(x, PAM_ERROR_MSG, "Self-service recovery is not available: ask an administrator for a "
					      "temporary access code.");
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: recovery refused: HTTP %d %s", x->user, a.status, code_of(&a));
		mfad_answer_free(&a);
		return PAM_AUTH_ERR;
	}
	strcpy(id, rid);
	mfad_answer_free(&a);
	pam_syslog(x->pamh, LOG_NOTICE, "user %s: account recovery started", x->user);

	say(x, PAM_TEXT_INFO, "Account recovery: a code was sent to your e-mail address.");
	if ((rc = ask(x, "E-mail code: ", code, sizeof(code))) != PAM_SUCCESS)
		return rc;
	snprintf(path, sizeof(path), "/v1/recovery/%s/email", id);
	if (build(body, sizeof(body), "code", code, NULL) < 0)
		goto out;
	rc = mfad_call(&x->c, "POST", path, body, &a);
	explicit_bzero(body, sizeof(body));
	explicit_bzero(code, sizeof(code));
	if (rc != MFAD_OK) {
		res = unreachable(x, rc, "recovery e-mail step") == PAM_SUCCESS ? PAM_AUTH_ERR : PAM_AUTHINFO_UNAVAIL;
		goto out;
	}
	if (a.status / 100 != 2) {
		res = refused(x, &a, "recovery e-mail code");
		mfad_answer_free(&a);
		goto out;
	}
	mfad_answer_free(&a);

	say(x, PAM_TEXT_INFO, "A code was sent to your phone.");
	if ((rc = ask(x, "Phone code: ", code, sizeof(code))) != PAM_SUCCESS)
		return rc;
	snprintf(path, sizeof(path), "/v1/recovery/%s/phone", id);
	if (build(body, sizeof(body), "code", code, NULL) < 0)
		goto out;
	rc = mfad_call(&x->c, "POST", path, body, &a);
	explicit_bzero(body, sizeof(body));
	explicit_bzero(code, sizeof(code));
	if (rc != MFAD_OK) {
		res = unreachable(x, rc, "recovery phone step") == PAM_SUCCESS ? PAM_AUTH_ERR : PAM_AUTHINFO_UNAVAIL;
		goto out;
	}
	const char *tok = mfad_str(a.body, "recovery_token");
	if (a.status / 100 != 2 || !tok || strlen(tok) >= sizeof(token)) {
		res = refused(x, &a, "recovery phone code");
		mfad_answer_free(&a);
		goto out;
	}
	strcpy(token, tok);
	mfad_answer_free(&a); /* json-c frees its copy; the answer buffer was wiped */

	rc = build(body, sizeof(body), "account", x->user, "recovery_token", token, NULL);
	explicit_bzero(token, sizeof(token));
	if (rc < 0)
		goto out;
	rc = mfad_call(&x->c, "POST", "/v1/authenticate", body, &a);
	explicit_bzero(body, sizeof(body));
	if (rc != MFAD_OK) {
		res = unreachable(x, rc, "recovery sign-in") == PAM_SUCCESS ? PAM_AUTH_ERR : PAM_AUTHINFO_UNAVAIL;
		goto out;
	}
	if (ok_result(x, &a, "a recovery token")) {
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: signed in through account recovery", x->user);
		say(x, PAM_TEXT_INFO, "Signed in through account recovery. Enroll a new device now (mfactl device add).");
		res = PAM_SUCCESS;
	} else {
		res = refused(x, &a, "recovery sign-in");
	}
	mfad_answer_free(&a);
out:
	explicit_bzero(body, sizeof(body));
	explicit_bzero(code, sizeof(code));
	explicit_bzero(token, sizeof(token));
	return res;
}

/* The resync hint: mfad refused the code and thinks the device's clock
 * may be off. The next code the device shows, sent with the first one,
 * resyncs it and signs in (mfad counts it against the resync budget). */
static int next_code(struct ctx *x, const char *code1)
{
	char code2[CODE_MAX];
	say(x, PAM_TEXT_INFO, "If your device's clock may be off, enter the next code it shows.");
	int rc = ask(x, "Next code (Enter to give up): ", code2, sizeof(code2));
	if (rc != PAM_SUCCESS)
		return rc;
	if (!code2[0]) {
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: no next code given after the resync hint", x->user);
		return PAM_AUTH_ERR;
	}
	rc = sign_in_with_code(x, code1, code2, 0);
	explicit_bzero(code2, sizeof(code2));
	if (rc == PAM_SUCCESS)
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: signed in with two consecutive codes (resync)", x->user);
	return rc;
}

/* code_already_used: the code was accepted a moment ago (a second
 * sign-in within one step); a fresh one, once. */
static int fresh_code(struct ctx *x)
{
	char code[CODE_MAX];
	say(x, PAM_ERROR_MSG, "That code was already used. Wait for the next code.");
	int rc = ask(x, "Verification code: ", code, sizeof(code));
	if (rc != PAM_SUCCESS)
		return rc;
	rc = code[0] ? sign_in_with_code(x, code, NULL, 0) : PAM_AUTH_ERR;
	explicit_bzero(code, sizeof(code));
	return rc;
}

/* Signs in with a typed code (with next, the one after it: a resync).
 * With retry, a refusal may lead to one more prompt (the resync hint,
 * code_already_used), and before the device list was read, an answer
 * that no OTP device can match the code is NEED_LIST. */
static int sign_in_with_code(struct ctx *x, const char *code, const char *next, int retry)
{
	char body[BODY_MAX];
	struct mfad_answer a;
	if (build(body, sizeof(body), "account", x->user, "code", code, "next_code", next, NULL) < 0)
		return PAM_AUTH_ERR;
	int rc = mfad_call_last(&x->c, "POST", "/v1/authenticate", body, &a);
	explicit_bzero(body, sizeof(body));
	if (rc != MFAD_OK)
		return unreachable(x, rc, "authenticate") == PAM_SUCCESS ? PAM_AUTH_ERR : PAM_AUTHINFO_UNAVAIL;
	if (ok_result(x, &a, next ? "a code and the next one" : "a code")) {
		mfad_answer_free(&a);
		return PAM_SUCCESS;
	}
	const char *pc = code_of(&a), *hint = mfad_str(a.body, "hint");
	int res;
	if (retry && !x->devices_loaded && strcmp(pc, "no_active_device") == 0) {
		DEBUG(x, "user %s: no active OTP device: reading the device list", x->user);
		res = NEED_LIST;
	} else if (a.status == 404 && strcmp(pc, "not_found") == 0) {
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: no mfad account", x->user);
		res = x->o.nouserok ? PAM_SUCCESS : PAM_USER_UNKNOWN;
	} else if (retry && !next && hint && strcmp(hint, "resync") == 0) {
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: code refused by mfad: %s (resync suggested)", x->user, pc);
		if (strcmp(pc, "invalid_code") == 0)
			say(x, PAM_ERROR_MSG, "Invalid code.");
		res = next_code(x, code);
	} else if (retry && strcmp(pc, "code_already_used") == 0) {
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: code refused by mfad: code_already_used", x->user);
		res = fresh_code(x);
	} else {
		res = refused(x, &a, next ? "code and next code" : "code");
	}
	mfad_answer_free(&a);
	return res;
}

static int fido_event(void *ctxp, json_object *ev)
{
	struct ctx *x = ctxp;
	const char *kind = mfad_str(ev, "event"), *status = mfad_str(ev, "status");
	if (!kind)
		return 0;
	DEBUG(x, "user %s: key event %s%s%s", x->user, kind, status ? " " : "", status ? status : "");
	int touch = strcmp(kind, "touch_required") == 0 ||
		    (strcmp(kind, "keepalive") == 0 && status && strcmp(status, "up_needed") == 0);
	if (touch && x->o.cue && !x->cued) {
		x->cued = 1;
		if (converse(x, PAM_TEXT_INFO, x->o.cue_prompt, NULL, 0) != PAM_SUCCESS)
			return 1; /* the conversation is gone: cancel */
	} else if (strcmp(kind, "key_added") == 0 && x->o.cue) {
		if (converse(x, PAM_TEXT_INFO, "Security key found.", NULL, 0) != PAM_SUCCESS)
			return 1;
	}
	return 0;
}

/* Signs in with a security key: PAM_SUCCESS, a failure, or FIDO_NOKEY when
 * no key was there or touched (another method may follow). */
static int sign_in_with_key(struct ctx *x, int wait)
{
	char body[BODY_MAX], pin[CODE_MAX] = "";
	struct mfad_answer a;
	int res = PAM_AUTH_ERR;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (build(body, sizeof(body), "account", x->user, "wait_for_key", wait ? "=true" : "=false", "pin",
			  pin[0] ? pin : NULL, NULL) < 0)
			break;
		x->cued = 0;
		int rc = mfad_stream(&x->c, "/v1/authenticate", body, x->o.timeout_s * 1000, fido_event, x, &a);
		explicit_bzero(body, sizeof(body));
		explicit_bzero(pin, sizeof(pin));
		if (rc == MFAD_ECANCEL) {
			pam_syslog(x->pamh, LOG_NOTICE, "user %s: security key sign-in cancelled", x->user);
			return PAM_AUTH_ERR;
		}
		if (rc == MFAD_ETIMEOUT) {
			pam_syslog(x->pamh, LOG_NOTICE, "user %s: no security key touched within %d s", x->user, x->o.timeout_s);
			say(x, PAM_ERROR_MSG, "No security key was touched in time.");
			return FIDO_NOKEY;
		}
		if (rc != MFAD_OK)
			return unreachable(x, rc, "security key sign-in") == PAM_SUCCESS ? PAM_AUTH_ERR : PAM_AUTHINFO_UNAVAIL;
		if (ok_result(x, &a, "a security key")) {
			mfad_answer_free(&a);
			return PAM_SUCCESS;
		}
		const char *code = code_of(&a);
		if (strcmp(code, "pin_required") == 0 && attempt == 0) {
			mfad_answer_free(&a);
			if ((rc = ask(x, "Security key PIN: ", pin, sizeof(pin))) != PAM_SUCCESS)
				return rc;
			if (!pin[0])
				return PAM_AUTH_ERR;
			continue;
		}
		if (strcmp(code, "no_key_present") == 0 || strcmp(code, "no_key_touched") == 0) {
			pam_syslog(x->pamh, LOG_NOTICE, "user %s: security key sign-in: %s", x->user, code);
			mfad_answer_free(&a);
			return FIDO_NOKEY;
		}
		if (strcmp(code, "possibly_cloned") == 0)
			say(x, PAM_ERROR_MSG, "This security key is refused: it may have been cloned. Tell an administrator.");
		else if (strcmp(code, "emulated_key_refused") == 0)
			say(x, PAM_ERROR_MSG, "Software security keys are not accepted here.");
		res = refused(x, &a, "security key");
		mfad_answer_free(&a);
		break;
	}
	explicit_bzero(pin, sizeof(pin));
	return res;
}

/* A code prompt once the devices are known: Enter is "lost your device". */
static int code_prompt(struct ctx *x, const char *prompt)
{
	char code[CODE_MAX];
	int rc = ask(x, prompt, code, sizeof(code));
	if (rc != PAM_SUCCESS)
		return rc;
	rc = code[0] ? sign_in_with_code(x, code, NULL, 1) : lost_device(x);
	explicit_bzero(code, sizeof(code));
	return rc == NEED_LIST ? PAM_AUTH_ERR : rc;
}

/* How the sign-in got to the device list. */
enum asked { ASKED_NOTHING, ASKED_ENTER, ASKED_CODE };

/* The sign-in decided by the account's devices: before any prompt
 * (keyfirst, nouserok, methods=fido), after Enter at the first prompt,
 * or after a code that no OTP device could match (no_active_device). */
static int listed(struct ctx *x, enum asked asked)
{
	int no_account, rc = load_devices(x, &no_account);
	if (rc == PASS_NODAEMON)
		return asked == ASKED_NOTHING ? PAM_SUCCESS : PAM_AUTH_ERR; /* already logged */
	if (rc != PAM_SUCCESS)
		return rc;
	if (no_account) {
		if (x->o.nouserok) {
			DEBUG(x, "user %s: no mfad account; passing because of nouserok", x->user);
			return PAM_SUCCESS;
		}
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: no mfad account", x->user);
		return PAM_USER_UNKNOWN;
	}
	if (x->n_active == 0) {
		/* Never enrolled, or recovery pending: the account tells. */
		rc = load_account(x, &no_account);
		if (rc == PASS_NODAEMON)
			return asked == ASKED_NOTHING ? PAM_SUCCESS : PAM_AUTH_ERR;
		if (rc != PAM_SUCCESS)
			return rc;
		if (no_account) { /* deleted between the two requests */
			pam_syslog(x->pamh, LOG_NOTICE, "user %s: no mfad account", x->user);
			return x->o.nouserok ? PAM_SUCCESS : PAM_USER_UNKNOWN;
		}
		DEBUG(x, "user %s: %s, ever_enrolled=%d", x->user, x->owner ? "owner" : "member", x->ever_enrolled);
		if (!x->ever_enrolled) {
			if (x->o.nouserok) {
				DEBUG(x, "user %s: never enrolled a device; passing because of nouserok", x->user);
				return PAM_SUCCESS;
			}
			pam_syslog(x->pamh, LOG_NOTICE, "user %s: no device enrolled", x->user);
			say(x, PAM_ERROR_MSG, "No MFA device is enrolled for this account.");
			return PAM_AUTH_ERR;
		}
		/* Recovery pending: every device was deactivated or lost. A
		 * temporary code typed at the first prompt was tried already. */
		pam_syslog(x->pamh, LOG_NOTICE, "user %s: recovery pending (no active device)", x->user);
		if (asked == ASKED_ENTER)
			return lost_device(x);
		return code_prompt(x, "Temporary access code (Enter if you have none): ");
	}
	if (x->n_fido) {
		/* Wait for a key when it is the only way, or the user chose it. */
		rc = sign_in_with_key(x, !x->n_otp || asked != ASKED_NOTHING);
		if (rc != FIDO_NOKEY)
			return rc;
		if (!x->n_otp || asked != ASKED_NOTHING) {
			char line[CODE_MAX];
			rc = converse(x, PAM_PROMPT_ECHO_ON,
				      "Lost your security key? Press Enter for help, or type anything to cancel: ", line,
				      sizeof(line));
			if (rc != PAM_SUCCESS || line[0])
				return PAM_AUTH_ERR;
			return lost_device(x);
		}
	}
	if (x->n_otp) {
		if (asked == ASKED_ENTER)
			return lost_device(x);
		return code_prompt(x, "Verification code (Enter if you lost your device): ");
	}
	pam_syslog(x->pamh, LOG_NOTICE, "user %s: no active device of the methods this service allows", x->user);
	return PAM_AUTH_ERR;
}

/* The common case: the code prompt first, then one request. */
static int prompt_first(struct ctx *x)
{
	char code[CODE_MAX];
	int rc;
	if (x->o.nodaemonok && (rc = mfad_connect(&x->c)) != MFAD_OK) {
		/* Whether mfad runs decides before anyone is asked for a code. */
		return unreachable(x, rc, "connect");
	}
	rc = ask(x, x->o.fido ? "Verification code (Enter for a security key, or if you lost your device): "
			      : "Verification code (Enter if you lost your device): ",
		 code, sizeof(code));
	if (rc != PAM_SUCCESS)
		return rc;
	if (!code[0])
		return listed(x, ASKED_ENTER);
	rc = sign_in_with_code(x, code, NULL, 1);
	explicit_bzero(code, sizeof(code));
	return rc == NEED_LIST ? listed(x, ASKED_CODE) : rc;
}

static int start(struct ctx *x, pam_handle_t *pamh, int argc, const char **argv)
{
	memset(x, 0, sizeof(*x));
	x->pamh = pamh;
	parse_opts(pamh, argc, argv, &x->o);
	mfad_client_init(&x->c, x->o.socket, IO_TIMEOUT_MS);
	x->c.debug = x->o.debug;
	x->c.peer_ok = peer_ok;
	x->c.ctx = x;
	int rc = pam_get_user(pamh, &x->user, NULL);
	if (rc != PAM_SUCCESS || !x->user || !x->user[0]) {
		pam_syslog(pamh, LOG_ERR, "no user name");
		return rc == PAM_SUCCESS ? PAM_USER_UNKNOWN : rc;
	}
	size_t n = strlen(x->user);
	if (n > NAME_MAX_LEN || strcmp(x->user, ".") == 0 || strcmp(x->user, "..") == 0 ||
	    mfad_path_escape(x->uesc, sizeof(x->uesc), x->user) < 0) {
		pam_syslog(pamh, LOG_ERR, "user name refused (too long or a path element)");
		return PAM_USER_UNKNOWN;
	}
	for (const char *p = x->user; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			pam_syslog(pamh, LOG_ERR, "user name refused (control characters)");
			return PAM_USER_UNKNOWN;
		}
	return PAM_SUCCESS;
}

EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct ctx x;
	int rc = start(&x, pamh, argc, argv);
	if (rc != PAM_SUCCESS)
		return rc;
	x.silent = (flags & PAM_SILENT) != 0;
	if (x.o.keyfirst || x.o.nouserok || !x.o.otp)
		rc = listed(&x, ASKED_NOTHING);
	else
		rc = prompt_first(&x);
	DEBUG(&x, "user %s: %d connection(s) to mfad", x.user, x.c.connects);
	mfad_close(&x.c);
	return rc;
}

EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS;
}

EXPORT int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	struct ctx x;
	char path[PATH_MAX_LEN];
	struct mfad_answer a;
	int rc = start(&x, pamh, argc, argv);
	if (rc != PAM_SUCCESS)
		return rc;
	snprintf(path, sizeof(path), "/v1/accounts/%s", x.uesc);
	rc = mfad_call(&x.c, "GET", path, NULL, &a);
	mfad_close(&x.c); /* the step's only request */
	if (rc != MFAD_OK)
		return unreachable(&x, rc, "account check") == PAM_SUCCESS ? PAM_IGNORE : PAM_AUTHINFO_UNAVAIL;
	if (a.status == 404 && a.code && strcmp(a.code, "not_found") == 0) {
		mfad_answer_free(&a);
		return PAM_IGNORE;
	}
	json_object *flagsv;
	if (a.status != 200 || !json_object_object_get_ex(a.body, "flags", &flagsv)) {
		pam_syslog(pamh, LOG_ERR, "user %s: account check refused: HTTP %d %s", x.user, a.status, code_of(&a));
		mfad_answer_free(&a);
		return PAM_AUTHINFO_UNAVAIL;
	}
	int res = PAM_SUCCESS;
	if (json_object_is_type(flagsv, json_type_array)) {
		size_t n = json_object_array_length(flagsv);
		for (size_t i = 0; i < n && i < 64; i++) {
			json_object *f = json_object_array_get_idx(flagsv, i);
			const char *s = json_object_is_type(f, json_type_string) ? json_object_get_string(f) : "";
			if (strcmp(s, "disabled") == 0) {
				res = PAM_PERM_DENIED;
				break;
			}
			if (strcmp(s, "password_change_required") == 0)
				res = PAM_NEW_AUTHTOK_REQD;
		}
	}
	mfad_answer_free(&a);
	if (res == PAM_NEW_AUTHTOK_REQD) {
		pam_syslog(pamh, LOG_NOTICE, "user %s: password change required by mfad", x.user);
		say(&x, PAM_ERROR_MSG, "You must change your password now.");
	} else if (res == PAM_PERM_DENIED) {
		pam_syslog(pamh, LOG_NOTICE, "user %s: account disabled in mfad", x.user);
	}
	return res;
}

EXPORT int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct ctx x;
	char path[PATH_MAX_LEN];
	struct mfad_answer a;
	if (!(flags & PAM_UPDATE_AUTHTOK))
		return PAM_IGNORE; /* the preliminary check: nothing to say yet */
	int rc = start(&x, pamh, argc, argv);
	if (rc != PAM_SUCCESS)
		return PAM_IGNORE;
	snprintf(path, sizeof(path), "/v1/accounts/%s/password-changed", x.uesc);
	rc = mfad_call(&x.c, "POST", path, NULL, &a);
	mfad_close(&x.c); /* the step's only request */
	if (rc != MFAD_OK) {
		/* The password did change; the flag stays and the next sign-in asks again. */
		pam_syslog(pamh, LOG_ERR, "user %s: could not report the password change: %s", x.user, mfad_strerror(rc));
		return PAM_IGNORE;
	}
	if (a.status == 404) {
		mfad_answer_free(&a);
		return PAM_IGNORE;
	}
	if (a.status / 100 != 2) {
		pam_syslog(pamh, LOG_ERR, "user %s: password change report refused: HTTP %d %s", x.user, a.status,
			   code_of(&a));
		mfad_answer_free(&a);
		return PAM_IGNORE;
	}
	mfad_answer_free(&a);
	DEBUG(&x, "user %s: password change reported", x.user);
	return PAM_SUCCESS;
}
