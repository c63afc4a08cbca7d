/*
 * mfad_client: the HTTP/1.1 + JSON client that pam_mfad uses to talk to
 * mfad over its Unix socket. One connection per PAM call, kept alive
 * across its requests (a streamed request closes it: closing is what
 * cancels a key operation); the peer's credentials are checked once per
 * connection; every buffer is bounded; responses are read with a deadline.
 * Nothing here knows about PAM, so the response parser can be fuzzed on
 * its own (fuzz_response.c).
 */
#ifndef MFAD_CLIENT_H
#define MFAD_CLIENT_H

#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

/* Bounds. */
#define MFAD_MAX_REQUEST   8192          /* whole request, headers and body */
#define MFAD_MAX_BODY      (64 * 1024)   /* a non-streamed answer */
#define MFAD_MAX_LINE      (8 * 1024)    /* one NDJSON line */
#define MFAD_MAX_HDR_LINE  4096          /* status line or one header line */
#define MFAD_MAX_HEADERS   64
#define MFAD_MAX_EVENTS    4096          /* NDJSON lines in one stream */
#define MFAD_MAX_CHUNK     (1 << 24)     /* one chunk of a chunked body */
#define MFAD_JSON_DEPTH    16

/* Results. */
enum {
	MFAD_OK = 0,
	MFAD_EOF = 1,        /* end of body (internal) */
	MFAD_ECONNECT = -1,  /* no socket or nothing listening: mfad is not running */
	MFAD_EIO = -2,       /* read or write failed, or the peer closed early */
	MFAD_ETIMEOUT = -3,  /* the deadline passed */
	MFAD_EPROTO = -4,    /* malformed HTTP or JSON */
	MFAD_ETOOBIG = -5,   /* a bound was exceeded */
	MFAD_ECANCEL = -6,   /* the caller cancelled (conversation error, signal) */
	MFAD_EBUSY = -7,     /* the socket's backlog is full: mfad is there but busy */
	MFAD_EPEER = -8,     /* the socket is served by a user that is not mfad's */
};

const char *mfad_strerror(int err);

/* A byte source: a socket read with a deadline, or memory (for fuzzing). */
struct mfad_src {
	int fd;                       /* -1: read from mem */
	const unsigned char *mem;
	size_t memlen, mempos;
	long long deadline_ms;        /* CLOCK_MONOTONIC, 0: none */
	int cancel_on_eintr;          /* a signal while waiting cancels */
	unsigned char buf[4096];
	size_t pos, len;
	size_t received;              /* bytes read from fd or mem so far */
	int err;                      /* sticky error, MFAD_E* */
};

void mfad_src_mem(struct mfad_src *s, const void *data, size_t len);

/* A response being read. */
struct mfad_resp {
	int status;
	int chunked;
	long long content_length;     /* -1: until the connection closes */
	int ndjson;                   /* Content-Type: application/x-ndjson */
	long long remaining;          /* in the current chunk or the whole body */
	int in_chunk;                 /* chunked: a chunk's data is being read */
	int body_done;
	size_t body_read;             /* decoded bytes so far */
	size_t body_limit;            /* 0: none */
	int close;                    /* HTTP/1.0 or "Connection: close": not reusable */
};

int mfad_read_head(struct mfad_src *s, struct mfad_resp *r);
/* Reads the whole (decoded) body into buf (NUL-terminated); *n its length. */
int mfad_read_body(struct mfad_src *s, struct mfad_resp *r, char *buf, size_t cap, size_t *n);
/* Reads one line of the decoded body, without its "\n" (and "\r");
 * MFAD_EOF at the end of the body. */
int mfad_read_line(struct mfad_src *s, struct mfad_resp *r, char *buf, size_t cap, size_t *n);

/* Parses a JSON object of len bytes with a bounded depth; NULL if it is
 * not exactly one JSON object (surrounding whitespace allowed). */
json_object *mfad_parse_object(const char *buf, size_t len);

/* Field helpers: NULL / 0 / def when absent or of another type. */
const char *mfad_str(json_object *o, const char *key);
int mfad_bool(json_object *o, const char *key);
long long mfad_int(json_object *o, const char *key, long long def);

/* JSON string escaping into a bounded buffer; -1 if it does not fit. */
int mfad_json_escape(char *out, size_t cap, size_t *pos, const char *in);
/* Percent-encoding of a path segment; -1 if it does not fit. */
int mfad_path_escape(char *out, size_t cap, const char *in);

/* A connection to mfad and what it needs to know; mfad_client_init
 * sets it up (not connected), mfad_close ends it. */
struct mfad_client;
/* Decides whether a socket served by uid (not 0: root is always mfad)
 * may be trusted; nonzero: yes. */
typedef int (*mfad_peer_fn)(struct mfad_client *c, uid_t uid);
struct mfad_client {
	const char *socket;
	int io_timeout_ms;            /* each plain request */
	int debug;
	mfad_peer_fn peer_ok;         /* NULL: only root */
	void *ctx;                    /* for peer_ok */
	int fd;                       /* the kept-alive connection, -1: none */
	uid_t peer_uid;               /* of the last connection (MFAD_EPEER tells it) */
	pid_t peer_pid;
	int requests;                 /* sent on fd (more than 1: it was reused) */
	int connects;                 /* connections opened (for debug logs) */
};

void mfad_client_init(struct mfad_client *c, const char *socket, int io_timeout_ms);
/* Opens the connection now (the next request uses it), checking the peer;
 * MFAD_OK when one is open already. */
int mfad_connect(struct mfad_client *c);
/* Closes the kept-alive connection, if any. */
void mfad_close(struct mfad_client *c);

struct mfad_answer {
	int status;
	json_object *body;            /* the JSON object answered, or NULL */
	const char *code;             /* problem code (points into body), or NULL */
};

void mfad_answer_free(struct mfad_answer *a);

/* One request on the kept-alive connection (opened, or reopened once when
 * mfad closed an idle one); body may be NULL. The request buffer is wiped
 * afterwards (it may hold a code). */
int mfad_call(struct mfad_client *c, const char *method, const char *path,
	      const char *body, struct mfad_answer *out);

/* The same for a request whose answer most likely ends the conversation
 * (a typed code: it is accepted far more often than not): mfad is asked
 * to close the connection after its answer instead of keeping it for a
 * next request, which then opens a new one. */
int mfad_call_last(struct mfad_client *c, const char *method, const char *path,
		   const char *body, struct mfad_answer *out);

/* A streamed request (Accept: application/x-ndjson). on_event sees every
 * line before the result; returning nonzero cancels (the connection is
 * closed, which cancels the operation in mfad). *result receives the
 * result line's object, or, when mfad answers one document instead of a
 * stream, that document (with a problem's code in out->code). */
typedef int (*mfad_event_fn)(void *ctx, json_object *event);
int mfad_stream(struct mfad_client *c, const char *path, const char *body,
		int timeout_ms, mfad_event_fn on_event, void *ctx, struct mfad_answer *out);

/* The response half of mfad_stream and mfad_call, on any source: the
 * fuzz harness drives it on memory. */
int mfad_read_answer(struct mfad_src *s, int stream, mfad_event_fn on_event, void *ctx,
		     struct mfad_answer *out);
/* The same, telling whether the connection may carry another request: a
 * whole, delimited document, no "Connection: close", nothing after it. */
int mfad_read_answer_reuse(struct mfad_src *s, int stream, mfad_event_fn on_event, void *ctx,
			   struct mfad_answer *out, int *reusable);

#endif
