/*
 * Fuzz target for pam_mfad's response parser: HTTP status line, headers,
 * Content-Length / chunked bodies, NDJSON streams and the JSON in them.
 * The first input byte picks the mode (odd: a streamed request).
 *
 * With clang: libFuzzer (-fsanitize=fuzzer). Without: -DMFAD_STANDALONE_FUZZ
 * builds a driver that runs every seed and then -runs=N mutations of them
 * (deterministic; MFAD_FUZZ_SEED changes the sequence), meant for ASan+UBSan.
 */
#define _GNU_SOURCE
#include "mfad_client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int on_event(void *ctx, json_object *ev)
{
	int *n = ctx;
	const char *kind = mfad_str(ev, "event");
	(*n)++;
	return kind && strcmp(kind, "cancel-me") == 0;
}

static int last_rc, last_reusable;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	last_rc = MFAD_EPROTO;
	if (size == 0)
		return 0;
	struct mfad_src *s = malloc(sizeof(*s));
	if (!s)
		return 0;
	mfad_src_mem(s, data + 1, size - 1);
	struct mfad_answer a;
	int events = 0, reusable = 0;
	int rc = mfad_read_answer_reuse(s, data[0] & 1, on_event, &events, &a, &reusable);
	last_rc = rc;
	last_reusable = reusable;
	if (reusable && (rc != MFAD_OK || (data[0] & 1) || s->pos != s->len))
		abort(); /* only a whole document, with nothing after it, leaves the connection reusable */
	if (reusable && s->memlen > s->mempos) {
		/* Bytes after the answer: a second one on the same connection. */
		struct mfad_answer b;
		if (mfad_read_answer(s, 0, NULL, NULL, &b) == MFAD_OK)
			mfad_answer_free(&b);
		else if (b.body)
			abort();
	}
	if (rc == MFAD_OK) {
		json_object *extra, *devs;
		(void)mfad_bool(a.body, "ok");
		(void)mfad_str(a.body, "hint");
		(void)mfad_int(a.body, "retry_after", 0);
		(void)mfad_str(a.body, "recovery_token");
		if (json_object_object_get_ex(a.body, "extra", &extra))
			(void)mfad_str(extra, "device");
		if (json_object_object_get_ex(a.body, "devices", &devs) && json_object_is_type(devs, json_type_array))
			for (size_t i = 0; i < json_object_array_length(devs) && i < 64; i++)
				(void)mfad_str(json_object_array_get_idx(devs, i), "state");
		if (a.code && strlen(a.code) > MFAD_MAX_BODY)
			abort();
		mfad_answer_free(&a);
	} else if (a.body) {
		abort(); /* an error never leaves a body behind */
	}
	free(s);
	/* The escapers on the same bytes, as a string. */
	char in[512], out[3 * 512 + 8];
	size_t n = size - 1 < sizeof(in) - 1 ? size - 1 : sizeof(in) - 1, pos = 0;
	memcpy(in, data + 1, n);
	in[n] = '\0';
	if (mfad_json_escape(out, sizeof(out), &pos, in) == 0 && strlen(out) != pos)
		abort();
	if (mfad_path_escape(out, sizeof(out), in) == 0 && strspn(out, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
								 "0123456789-_.~%") != strlen(out))
		abort();
	return 0;
}

#ifdef MFAD_STANDALONE_FUZZ
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#define MAX_SEEDS 1024
#define FUZZ_MAX_INPUT (70 * 1024)

static unsigned char *seeds[MAX_SEEDS];
static char *seed_name[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static int nseeds;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void load(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			load(p);
		}
		if (d)
			closedir(d);
		return;
	}
	if (nseeds >= MAX_SEEDS || st.st_size > FUZZ_MAX_INPUT)
		return;
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	unsigned char *b = malloc((size_t)st.st_size + 1);
	size_t n = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	if (!b)
		return;
	seeds[nseeds] = b;
	seed_name[nseeds] = strdup(path);
	seed_len[nseeds++] = n;
}

static const char *tokens[] = { "\r\n", "\n", "0\r\n\r\n", "ffffffffffff\r\n", "7fffffff", ";ext", "{", "}", "[", "\"",
				"\\u0000", "\"event\":\"result\"", "\"ok\":true", "Transfer-Encoding: chunked\r\n",
				"Content-Length: 99999999999\r\n", "Content-Type: application/x-ndjson\r\n",
				"HTTP/1.1 100 Continue\r\n\r\n", "\"code\":", "1e999", "-0", "\xff\xfe",
				"Connection: close\r\n", "Connection: keep-alive, close\r\n", "HTTP/1.0 ",
				"\"hint\":\"resync\",", "\"code\":\"code_already_used\"", "\"next_code\":" };

static size_t mutate(unsigned char *buf, size_t len)
{
	int k = 1 + (int)(next() % 4);
	for (int i = 0; i < k; i++) {
		size_t at = len ? next() % (len + 1) : 0;
		switch (next() % 6) {
		case 0: /* flip */
			if (len)
				buf[at % len] ^= (unsigned char)(1u << (next() % 8));
			break;
		case 1: /* random byte */
			if (len)
				buf[at % len] = (unsigned char)next();
			break;
		case 2: /* delete a range */
			if (len) {
				size_t n = 1 + next() % 16;
				if (at + n > len)
					n = len - at;
				memmove(buf + at, buf + at + n, len - at - n);
				len -= n;
			}
			break;
		case 3: { /* insert a token */
			const char *t = tokens[next() % (sizeof(tokens) / sizeof(tokens[0]))];
			size_t n = strlen(t);
			if (len + n <= FUZZ_MAX_INPUT) {
				memmove(buf + at + n, buf + at, len - at);
				memcpy(buf + at, t, n);
				len += n;
			}
			break;
		}
		case 4: /* duplicate a range */
			if (len) {
				size_t n = 1 + next() % 64;
				if (at + n > len)
					n = len - at;
				if (len + n <= FUZZ_MAX_INPUT) {
					memmove(buf + at + n, buf + at, len - at);
					len += n;
				}
			}
			break;
		default: /* truncate */
			len = at;
			break;
		}
	}
	return len;
}

int main(int argc, char **argv)
{
	long runs = 10000;
	const char *seed = getenv("MFAD_FUZZ_SEED");
	if (seed)
		rng ^= strtoull(seed, NULL, 10) * 0x2545F4914F6CDD1DULL;
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "-runs=", 6) == 0)
			runs = strtol(argv[i] + 6, NULL, 10);
		else
			load(argv[i]);
	}
	if (nseeds == 0) {
		fprintf(stderr, "fuzz_response: no seeds\n");
		return 2;
	}
	/* Every seed is a well-formed answer: the parser must accept it. */
	int bad = 0;
	for (int i = 0; i < nseeds; i++) {
		LLVMFuzzerTestOneInput(seeds[i], seed_len[i]);
		if (last_rc != MFAD_OK) {
			fprintf(stderr, "fuzz_response: seed %s refused: %s\n", seed_name[i], mfad_strerror(last_rc));
			bad++;
		}
		/* Seeds named so say whether their connection may be reused. */
		int want = strstr(seed_name[i], "keepalive") ? 1 : strstr(seed_name[i], "close") || strstr(seed_name[i], "http10") ? 0 : -1;
		if (want >= 0 && last_reusable != want) {
			fprintf(stderr, "fuzz_response: seed %s: reusable %d, want %d\n", seed_name[i], last_reusable, want);
			bad++;
		}
	}
	if (bad)
		return 1;
	unsigned char *buf = malloc(FUZZ_MAX_INPUT);
	if (!buf)
		return 2;
	for (long r = 0; r < runs; r++) {
		int i = (int)(next() % (uint64_t)nseeds);
		memcpy(buf, seeds[i], seed_len[i]);
		size_t n = mutate(buf, seed_len[i]);
		/* An exact-size heap copy, so that ASan sees any overread. */
		unsigned char *in = malloc(n ? n : 1);
		memcpy(in, buf, n);
		LLVMFuzzerTestOneInput(in, n);
		free(in);
	}
	printf("fuzz_response: %d seeds, %ld mutated inputs, no crash\n", nseeds, runs);
	free(buf);
	for (int i = 0; i < nseeds; i++) {
		free(seeds[i]);
		free(seed_name[i]);
	}
	return 0;
}
#endif
