/*
 * mfad_client.c: HTTP/1.1 over AF_UNIX, bounded, with chunked transfer
 * decoding and NDJSON lines read as they come. See mfad_client.h.
 */
#define _GNU_SOURCE
#include "mfad_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

const char *mfad_strerror(int err)
{
	switch (err) {
	case MFAD_OK: return "ok";
	case MFAD_EOF: return "end of body";
	case MFAD_ECONNECT: return "mfad is not running (no socket or nothing listening)";
	case MFAD_EIO: return "connection to mfad failed";
	case MFAD_ETIMEOUT: return "mfad did not answer in time";
	case MFAD_EPROTO: return "malformed answer from mfad";
	case MFAD_ETOOBIG: return "answer from mfad exceeds a limit";
	case MFAD_ECANCEL: return "cancelled";
	case MFAD_EBUSY: return "mfad is busy (socket backlog full)";
	case MFAD_EPEER: return "the socket is served by a user that is not mfad's";
	}
	return "unknown error";
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mfad_src_mem(struct mfad_src *s, const void *data, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->mem = data;
	s->memlen = len;
}

/* Refills the buffer; MFAD_OK, MFAD_EOF or an error (sticky). */
static int src_fill(struct mfad_src *s)
{
	if (s->err)
		return s->err;
	if (s->fd < 0) {
		size_t n = s->memlen - s->mempos;
		if (n == 0)
			return MFAD_EOF;
		if (n > sizeof(s->buf))
			n = sizeof(s->buf);
		memcpy(s->buf, s->mem + s->mempos, n);
		s->mempos += n;
		s->pos = 0;
		s->len = n;
		s->received += n;
		return MFAD_OK;
	}
	for (;;) {
		int wait = -1;
		if (s->deadline_ms) {
			long long left = s->deadline_ms - now_ms();
			if (left <= 0)
				return s->err = MFAD_ETIMEOUT;
			wait = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int rc = poll(&p, 1, wait);
		if (rc < 0) {
			if (errno == EINTR) {
				if (s->cancel_on_eintr)
					return s->err = MFAD_ECANCEL;
				continue;
			}
			return s->err = MFAD_EIO;
		}
		if (rc == 0)
			continue; /* the deadline is checked above */
		ssize_t n = read(s->fd, s->buf, sizeof(s->buf));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return s->err = MFAD_EIO;
		}
		if (n == 0)
			return MFAD_EOF;
		s->pos = 0;
		s->len = (size_t)n;
		s->received += (size_t)n;
		return MFAD_OK;
	}
}

/* One byte (0..255), or a negative error, or MFAD_EOF. */
static int src_getc(struct mfad_src *s)
{
	if (s->pos >= s->len) {
		int rc = src_fill(s);
		if (rc != MFAD_OK)
			return rc == MFAD_EOF ? MFAD_EOF : rc;
	}
	return s->buf[s->pos++];
}

/* Reads a raw line ending in "\n" (the "\r" before it is dropped).
 * A line longer than cap-1 is MFAD_ETOOBIG; EOF before "\n" is EPROTO. */
static int src_line(struct mfad_src *s, char *buf, size_t cap, size_t *n)
{
	size_t i = 0;
	for (;;) {
		int c = src_getc(s);
		if (c == MFAD_EOF)
			return MFAD_EPROTO;
		if (c < 0)
			return c;
		if (c == '\n')
			break;
		if (i + 1 >= cap)
			return MFAD_ETOOBIG;
		buf[i++] = (char)c;
	}
	if (i > 0 && buf[i - 1] == '\r')
		i--;
	buf[i] = '\0';
	*n = i;
	return MFAD_OK;
}

/* Parses a non-negative decimal; -1 on anything else or overflow. */
static long long parse_dec(const char *p)
{
	long long v = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (1LL << 40))
			return -1;
		v = v * 10 + (*p - '0');
	}
	while (*p == ' ' || *p == '\t')
		p++;
	return *p ? -1 : v;
}

static const char *header_value(const char *line, const char *name)
{
	size_t n = strlen(name);
	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

/* Whether a comma-separated header value lists token (any case). */
static int has_token(const char *v, const char *token)
{
	size_t n = strlen(token);
	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		const char *e = v;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - v) == n && strncasecmp(v, token, n) == 0)
			return 1;
		v = e;
	}
	return 0;
}

int mfad_read_head(struct mfad_src *s, struct mfad_resp *r)
{
	char line[MFAD_MAX_HDR_LINE];
	size_t n;
	int rc;
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	/* Informational answers (1xx) come before the real one; allow a few. */
	for (int informational = 0;; informational++) {
		if (informational > 4)
			return MFAD_EPROTO;
		if ((rc = src_line(s, line, sizeof(line), &n)) != MFAD_OK)
			return rc;
		if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
		    line[8] != ' ' || line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
		    line[11] < '0' || line[11] > '9' || (n > 12 && line[12] != ' '))
			return MFAD_EPROTO;
		r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
		r->close = line[7] == '0';
		int headers = 0;
		for (;;) {
			if ((rc = src_line(s, line, sizeof(line), &n)) != MFAD_OK)
				return rc;
			if (n == 0)
				break;
			if (++headers > MFAD_MAX_HEADERS)
				return MFAD_ETOOBIG;
			if (memchr(line, '\0', n))
				return MFAD_EPROTO;
			const char *v;
			if ((v = header_value(line, "Content-Length"))) {
				long long cl = parse_dec(v);
				if (cl < 0 || (r->content_length >= 0 && r->content_length != cl))
					return MFAD_EPROTO;
				r->content_length = cl;
			} else if ((v = header_value(line, "Transfer-Encoding"))) {
				if (strcasecmp(v, "chunked") != 0)
					return MFAD_EPROTO; /* mfad never sends another coding */
				r->chunked = 1;
			} else if ((v = header_value(line, "Connection"))) {
				if (has_token(v, "close"))
					r->close = 1;
			} else if ((v = header_value(line, "Content-Type"))) {
				r->ndjson = strncasecmp(v, "application/x-ndjson", 20) == 0 &&
					    (v[20] == '\0' || v[20] == ';' || v[20] == ' ');
			}
		}
		if (r->status >= 200)
			break;
		r->content_length = -1;
		r->chunked = r->ndjson = 0;
	}
	if (r->chunked)
		r->content_length = -1; /* RFC 9112 6.3: chunked wins */
	r->remaining = r->content_length;
	if (r->status == 204 || r->status == 304 || r->content_length == 0)
		r->body_done = 1;
	return MFAD_OK;
}

/* One decoded body byte, MFAD_EOF at the end, or an error. */
static int body_getc(struct mfad_src *s, struct mfad_resp *r)
{
	int c;
	if (r->body_done)
		return MFAD_EOF;
	if (r->body_limit && r->body_read >= r->body_limit)
		return MFAD_ETOOBIG;
	if (r->chunked) {
		if (!r->in_chunk) {
			char line[128];
			size_t n;
			int rc = src_line(s, line, sizeof(line), &n);
			if (rc == MFAD_ETOOBIG)
				return MFAD_EPROTO;
			if (rc != MFAD_OK)
				return rc;
			long long size = 0;
			size_t i = 0;
			for (; i < n; i++) {
				int ch = line[i], d;
				if (ch >= '0' && ch <= '9')
					d = ch - '0';
				else if (ch >= 'a' && ch <= 'f')
					d = ch - 'a' + 10;
				else if (ch >= 'A' && ch <= 'F')
					d = ch - 'A' + 10;
				else
					break;
				size = size * 16 + d;
				if (size > MFAD_MAX_CHUNK)
					return MFAD_ETOOBIG;
			}
			if (i == 0 || (i < n && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
				return MFAD_EPROTO;
			if (size == 0) {
				/* Trailers, then the empty line. */
				for (int t = 0;; t++) {
					if (t > MFAD_MAX_HEADERS)
						return MFAD_ETOOBIG;
					char tl[MFAD_MAX_HDR_LINE];
					if ((rc = src_line(s, tl, sizeof(tl), &n)) != MFAD_OK)
						return rc;
					if (n == 0)
						break;
				}
				r->body_done = 1;
				return MFAD_EOF;
			}
			r->remaining = size;
			r->in_chunk = 1;
		}
		c = src_getc(s);
		if (c == MFAD_EOF)
			return MFAD_EPROTO;
		if (c < 0)
			return c;
		if (--r->remaining == 0) {
			/* The CRLF that closes the chunk's data. */
			int a = src_getc(s);
			if (a == '\r')
				a = src_getc(s);
			if (a != '\n')
				return a < 0 && a != MFAD_EOF ? a : MFAD_EPROTO;
			r->in_chunk = 0;
		}
	} else if (r->content_length >= 0) {
		if (r->remaining <= 0) {
			r->body_done = 1;
			return MFAD_EOF;
		}
		c = src_getc(s);
		if (c == MFAD_EOF)
			return MFAD_EPROTO; /* shorter than announced */
		if (c < 0)
			return c;
		if (--r->remaining == 0)
			r->body_done = 1;
	} else {
		c = src_getc(s);
		if (c == MFAD_EOF) {
			r->body_done = 1;
			return MFAD_EOF;
		}
		if (c < 0)
			return c;
	}
	r->body_read++;
	return c;
}

int mfad_read_body(struct mfad_src *s, struct mfad_resp *r, char *buf, size_t cap, size_t *n)
{
	size_t i = 0;
	for (;;) {
		int c = body_getc(s, r);
		if (c == MFAD_EOF)
			break;
		if (c < 0)
			return c;
		if (i + 1 >= cap)
			return MFAD_ETOOBIG;
		buf[i++] = (char)c;
	}
	buf[i] = '\0';
	*n = i;
	return MFAD_OK;
}

int mfad_read_line(struct mfad_src *s, struct mfad_resp *r, char *buf, size_t cap, size_t *n)
{
	size_t i = 0;
	for (;;) {
		int c = body_getc(s, r);
		if (c == MFAD_EOF) {
			if (i == 0)
				return MFAD_EOF;
			break; /* a last line without "\n" */
		}
		if (c < 0)
			return c;
		if (c == '\n')
			break;
		if (i + 1 >= cap)
			return MFAD_ETOOBIG;
		buf[i++] = (char)c;
	}
	if (i > 0 && buf[i - 1] == '\r')
		i--;
	buf[i] = '\0';
	*n = i;
	return MFAD_OK;
}

json_object *mfad_parse_object(const char *buf, size_t len)
{
	if (len > MFAD_MAX_BODY || memchr(buf, '\0', len))
		return NULL;
	json_tokener *tok = json_tokener_new_ex(MFAD_JSON_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	size_t used = json_tokener_get_parse_end(tok);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success)
		goto bad;
	for (; used < len; used++)
		if (buf[used] != ' ' && buf[used] != '\n' && buf[used] != '\r' && buf[used] != '\t')
			goto bad;
	if (!json_object_is_type(o, json_type_object))
		goto bad;
	return o;
bad:
	json_object_put(o);
	return NULL;
}

const char *mfad_str(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int mfad_bool(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
		return 0;
	return json_object_get_boolean(v);
}

long long mfad_int(json_object *o, const char *key, long long def)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return def;
	return (long long)json_object_get_int64(v);
}

int mfad_json_escape(char *out, size_t cap, size_t *pos, const char *in)
{
	static const char hex[] = "0123456789abcdef";
	size_t p = *pos;
	for (const unsigned char *c = (const unsigned char *)in; *c; c++) {
		char tmp[7];
		size_t k;
		if (*c == '"' || *c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)*c;
			k = 2;
		} else if (*c < 0x20) {
			memcpy(tmp, "\\u00", 4);
			tmp[4] = hex[*c >> 4];
			tmp[5] = hex[*c & 15];
			k = 6;
		} else {
			tmp[0] = (char)*c;
			k = 1;
		}
		if (p + k >= cap)
			return -1;
		memcpy(out + p, tmp, k);
		p += k;
	}
	out[p] = '\0';
	*pos = p;
	return 0;
}

int mfad_path_escape(char *out, size_t cap, const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t p = 0;
	for (const unsigned char *c = (const unsigned char *)in; *c; c++) {
		int plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			    *c == '-' || *c == '_' || *c == '.' || *c == '~';
		if (p + (plain ? 1 : 3) >= cap)
			return -1;
		if (plain) {
			out[p++] = (char)*c;
		} else {
			out[p++] = '%';
			out[p++] = hex[*c >> 4];
			out[p++] = hex[*c & 15];
		}
	}
	out[p] = '\0';
	return 0;
}

void mfad_answer_free(struct mfad_answer *a)
{
	if (a->body)
		json_object_put(a->body);
	a->body = NULL;
	a->code = NULL;
}

void mfad_client_init(struct mfad_client *c, const char *socket, int io_timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->socket = socket;
	c->io_timeout_ms = io_timeout_ms;
	c->fd = -1;
	c->peer_uid = (uid_t)-1;
}

void mfad_close(struct mfad_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->requests = 0;
}

/* Connects and checks who serves the socket: root, or a user peer_ok
 * accepts (mfad's service user). Anyone else could have bound the path
 * (a stale socket directory, a compromised service user's file) and would
 * be told codes and asked to say "ok": fail closed. */
static int open_connection(struct mfad_client *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!c->socket || strlen(c->socket) >= sizeof(sa.sun_path))
		return MFAD_ECONNECT;
	strcpy(sa.sun_path, c->socket);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return MFAD_EIO;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		/* Only a missing socket or no listener counts as "not running"
		 * (nodaemonok); a full backlog is a busy mfad, which fails. */
		if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
			return MFAD_ECONNECT;
		return e == EAGAIN ? MFAD_EBUSY : MFAD_EIO;
	}
	/* The credentials of whoever listened on the socket (systemd, for a
	 * socket-activated mfad: root). */
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
		close(fd);
		c->peer_uid = (uid_t)-1;
		c->peer_pid = 0;
		return MFAD_EPEER;
	}
	c->peer_uid = cred.uid;
	c->peer_pid = cred.pid;
	if (cred.uid != 0 && !(c->peer_ok && c->peer_ok(c, cred.uid))) {
		close(fd);
		return MFAD_EPEER;
	}
	c->fd = fd;
	c->requests = 0;
	c->connects++;
	return MFAD_OK;
}

int mfad_connect(struct mfad_client *c)
{
	return c->fd >= 0 ? MFAD_OK : open_connection(c);
}

/* Whether the kept-alive connection is still open: mfad closes an idle
 * one (after its idle timeout, or when it stops); a readable or hung-up
 * socket between two answers means it did. */
static int still_open(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 0;
}

/* Sends the whole request on c->fd. */
static int send_request(struct mfad_client *c, const char *method, const char *path, const char *body, int stream,
			int closing, long long deadline)
{
	char req[MFAD_MAX_REQUEST];
	size_t blen = body ? strlen(body) : 0;
	/* HTTP/1.1 keeps the connection by default; a streamed request, and
	 * one whose answer most likely ends the conversation, ask mfad to
	 * close it after the answer. */
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: mfad\r\nUser-Agent: pam_mfad\r\n%sAccept: %s\r\n%sContent-Length: %zu\r\n\r\n",
			 method, path, closing ? "Connection: close\r\n" : "",
			 stream ? "application/x-ndjson" : "application/json",
			 body ? "Content-Type: application/json\r\n" : "", blen);
	int rc = MFAD_OK;
	if (n < 0 || (size_t)n + blen >= sizeof(req)) {
		rc = MFAD_ETOOBIG;
	} else {
		if (blen)
			memcpy(req + n, body, blen);
		size_t total = (size_t)n + blen, off = 0;
		/* Sent at once when the socket takes it (a request is far below
		 * its buffer); waited for, within the deadline, only when full. */
		while (off < total) {
			/* MSG_NOSIGNAL: a closed socket must not SIGPIPE the host. */
			ssize_t w = send(c->fd, req + off, total - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w >= 0) {
				off += (size_t)w;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				rc = MFAD_EIO;
				break;
			}
			long long left = deadline - now_ms();
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };
			if (left <= 0) {
				rc = MFAD_ETIMEOUT;
				break;
			}
			int pr = poll(&p, 1, (int)left);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0) {
				rc = pr == 0 ? MFAD_ETIMEOUT : MFAD_EIO;
				break;
			}
		}
	}
	explicit_bzero(req, sizeof(req));
	return rc;
}

/* A problem's code, into out->code. */
static void take_problem(struct mfad_answer *out, json_object *doc)
{
	out->body = doc;
	out->code = mfad_str(doc, "code");
}

/* Reads one answer; *reusable says whether the connection may carry the
 * next request (a whole, delimited document and nothing after it). */
static int read_answer(struct mfad_src *s, int stream, mfad_event_fn on_event, void *ctx, struct mfad_answer *out,
		       int *reusable)
{
	struct mfad_resp r;
	*reusable = 0;
	int rc = mfad_read_head(s, &r);
	memset(out, 0, sizeof(*out));
	if (rc != MFAD_OK)
		return rc;
	out->status = r.status;
	if (!(stream && r.status == 200 && r.ndjson)) {
		/* One document: a JSON answer or a problem. */
		char *buf = malloc(MFAD_MAX_BODY + 1);
		size_t n = 0;
		if (!buf)
			return MFAD_EIO;
		r.body_limit = MFAD_MAX_BODY;
		rc = mfad_read_body(s, &r, buf, MFAD_MAX_BODY + 1, &n);
		if (rc == MFAD_OK && n > 0) {
			json_object *doc = mfad_parse_object(buf, n);
			if (doc)
				take_problem(out, doc);
			else if (r.status < 300)
				rc = MFAD_EPROTO; /* a success must carry JSON */
		}
		explicit_bzero(buf, n);
		free(buf);
		if (rc == MFAD_OK && r.status < 300 && !out->body)
			rc = MFAD_EPROTO;
		*reusable = rc == MFAD_OK && !stream && !r.close && r.body_done &&
			    (r.chunked || r.content_length >= 0) && s->pos == s->len;
		return rc;
	}
	/* NDJSON: one event per line, the last being the result. */
	char *line = malloc(MFAD_MAX_LINE);
	if (!line)
		return MFAD_EIO;
	rc = MFAD_EPROTO; /* a stream that ends without a result */
	for (int events = 0; events < MFAD_MAX_EVENTS; events++) {
		size_t n = 0;
		int lr = mfad_read_line(s, &r, line, MFAD_MAX_LINE, &n);
		if (lr == MFAD_EOF)
			break;
		if (lr != MFAD_OK) {
			rc = lr;
			break;
		}
		if (n == 0)
			continue;
		json_object *ev = mfad_parse_object(line, n);
		explicit_bzero(line, n);
		if (!ev)
			break;
		const char *kind = mfad_str(ev, "event");
		if (kind && strcmp(kind, "result") == 0) {
			json_object *err;
			out->body = ev;
			if (!mfad_bool(ev, "ok") && json_object_object_get_ex(ev, "error", &err) &&
			    json_object_is_type(err, json_type_object))
				out->code = mfad_str(err, "code");
			if (!mfad_bool(ev, "ok") && !out->code)
				out->code = "internal";
			rc = MFAD_OK;
			break;
		}
		int cancel = on_event ? on_event(ctx, ev) : 0;
		json_object_put(ev);
		if (cancel) {
			rc = MFAD_ECANCEL;
			break;
		}
	}
	free(line);
	return rc;
}

int mfad_read_answer(struct mfad_src *s, int stream, mfad_event_fn on_event, void *ctx, struct mfad_answer *out)
{
	int reusable;
	return read_answer(s, stream, on_event, ctx, out, &reusable);
}

int mfad_read_answer_reuse(struct mfad_src *s, int stream, mfad_event_fn on_event, void *ctx,
			   struct mfad_answer *out, int *reusable)
{
	return read_answer(s, stream, on_event, ctx, out, reusable);
}

static int exchange(struct mfad_client *c, const char *method, const char *path, const char *body, int stream,
		    int closing, int timeout_ms, mfad_event_fn on_event, void *ctx, struct mfad_answer *out)
{
	memset(out, 0, sizeof(*out));
	long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
	struct mfad_src *s = calloc(1, sizeof(*s));
	if (!s)
		return MFAD_EIO;
	int rc = MFAD_EIO, reusable = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		/* A connection opened before this request (kept alive, or
		 * opened before a prompt) may have been dropped by mfad as idle. */
		int reused = c->fd >= 0;
		if (reused && !still_open(c->fd)) {
			mfad_close(c);
			reused = 0;
		}
		if (c->fd < 0 && (rc = open_connection(c)) != MFAD_OK)
			break;
		c->requests++;
		s->received = 0;
		rc = send_request(c, method, path, body, stream, closing, deadline);
		if (rc == MFAD_OK) {
			s->fd = c->fd;
			s->mem = NULL;
			s->memlen = s->mempos = 0;
			s->pos = s->len = s->received = 0;
			s->err = 0;
			s->deadline_ms = deadline;
			s->cancel_on_eintr = stream;
			rc = read_answer(s, stream, on_event, ctx, out, &reusable);
		}
		if (rc != MFAD_OK || closing)
			reusable = 0; /* after Connection: close, never another request */
		if (!reusable)
			mfad_close(c); /* closing is what cancels a pending operation */
		/* An idle connection that mfad closed just as the request went
		 * out (not a byte of answer): once more, on a new
		 * connection, as HTTP clients do. mfad answers every request it
		 * reads, so the first one was not processed, unless mfad died
		 * while processing it: then a replayed code is refused. */
		if (reused && (rc == MFAD_EIO || rc == MFAD_EPROTO) && s->received == 0 && !out->body)
			continue;
		break;
	}
	explicit_bzero(s, sizeof(*s));
	free(s);
	if (rc != MFAD_OK)
		mfad_answer_free(out);
	return rc;
}

int mfad_call(struct mfad_client *c, const char *method, const char *path, const char *body, struct mfad_answer *out)
{
	return exchange(c, method, path, body, 0, 0, c->io_timeout_ms, NULL, NULL, out);
}

int mfad_call_last(struct mfad_client *c, const char *method, const char *path, const char *body,
		   struct mfad_answer *out)
{
	return exchange(c, method, path, body, 0, 1, c->io_timeout_ms, NULL, NULL, out);
}

int mfad_stream(struct mfad_client *c, const char *path, const char *body, int timeout_ms, mfad_event_fn on_event,
		void *ctx, struct mfad_answer *out)
{
	return exchange(c, "POST", path, body, 1, 1, timeout_ms, on_event, ctx, out);
}
