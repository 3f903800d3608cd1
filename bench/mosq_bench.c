/*
 * libmosquitto benchmark driver: the near-limit row of bench/clients.py.
 *
 * Same command line and output as bench/_peers/_common.py describes:
 *     mosq_bench ROLE HOST PORT TOPIC QOS SIZE COUNT NFILTERS BUDGET
 * prints "ready" once connected (and subscribed), then one "result key=value ..." line.
 * Roles: sub, filters, pub, pingpong, connect.
 *
 * Single-threaded: the program drives libmosquitto's network loop itself with
 * mosquitto_loop(). MQTT 5, TCP_NODELAY on (MOSQ_OPT_TCP_NODELAY; off by default in
 * libmosquitto), receive maximum 65535 like the Python clients (with libmosquitto's
 * default of 20, 2.0.11 intermittently fails a QoS 2 subscriber with "protocol error").
 * One handler per filter is routed by subscription identifier.
 *
 * Built at run time by bench/clients.py:
 *     cc -O2 -o mosq_bench bench/mosq_bench.c -lmosquitto
 * (Debian: apt-get install libmosquitto-dev).
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define IDLE 1.5
#define WINDOW 20
#define WARMUP 20
#define WARMUP_CONNECTS 2

struct state {
	int qos;
	long count;
	int nfilters;
	double budget;
	long received;
	double first, last, started;
	long published, completed;
	bool connected, subacked, disconnected, echoed;
	long *counts;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Peak RSS in KiB: VmHWM, since ru_maxrss keeps the parent's peak across exec. */
static long max_rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *status = fopen("/proc/self/status", "r");
	if (status) {
		while (fgets(line, sizeof line, status))
			if (sscanf(line, "VmHWM: %ld", &kib) == 1)
				break;
		fclose(status);
	}
	if (kib < 0) {
		struct rusage usage;
		getrusage(RUSAGE_SELF, &usage);
		kib = usage.ru_maxrss;
	}
	return kib;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "mosq_bench: %s: %s\n", what, mosquitto_strerror(rc));
	exit(2);
}

static void ready(void)
{
	fputs("ready\n", stdout);
	fflush(stdout);
}

static void hit(struct state *s)
{
	double t = now();
	if (s->received == 0)
		s->first = t;
	s->last = t;
	s->received++;
}

static bool should_stop(const struct state *s)
{
	if (s->received >= s->count)
		return true;
	if (s->received)
		return now() - s->last > IDLE;
	return now() - s->started > s->budget;
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
		       const mosquitto_property *props)
{
	struct state *s = obj;
	(void)m, (void)flags, (void)props;
	if (rc)
		die("connect refused", rc);
	s->connected = true;
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc,
			  const mosquitto_property *props)
{
	(void)m, (void)rc, (void)props;
	((struct state *)obj)->disconnected = true;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int qos_count,
			 const int *granted, const mosquitto_property *props)
{
	(void)m, (void)mid, (void)qos_count, (void)granted, (void)props;
	((struct state *)obj)->subacked = true;
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int rc,
		       const mosquitto_property *props)
{
	(void)m, (void)mid, (void)rc, (void)props;
	((struct state *)obj)->completed++;
}

static void on_message(struct mosquitto *m, void *obj,
		       const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	struct state *s = obj;
	(void)m, (void)msg;
	if (s->counts) {
		uint32_t id = 0;
		if (mosquitto_property_read_varint(props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
						   &id, false) &&
		    id >= 1 && (int)id <= s->nfilters)
			s->counts[id - 1]++;
	}
	s->echoed = true;
	hit(s);
}

static void pump(struct mosquitto *mosq, int timeout_ms)
{
	int rc = mosquitto_loop(mosq, timeout_ms, 1);
	if (rc != MOSQ_ERR_SUCCESS)
		die("network loop", rc);
}

static struct mosquitto *open_client(struct state *s, const char *host, int port)
{
	struct mosquitto *mosq = mosquitto_new(NULL, true, s);
	int rc;
	if (!mosq)
		die("mosquitto_new", MOSQ_ERR_NOMEM);
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 65535);
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
	mosquitto_subscribe_v5_callback_set(mosq, on_subscribe);
	mosquitto_publish_v5_callback_set(mosq, on_publish);
	mosquitto_message_v5_callback_set(mosq, on_message);
	s->connected = s->disconnected = false;
	rc = mosquitto_connect(mosq, host, port, 60);
	if (rc)
		die("connect", rc);
	while (!s->connected)
		pump(mosq, 100);
	return mosq;
}

static void subscribe(struct mosquitto *mosq, struct state *s, const char *topic,
		      int qos, uint32_t identifier)
{
	mosquitto_property *props = NULL;
	int rc;
	if (identifier)
		mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
					      identifier);
	s->subacked = false;
	rc = mosquitto_subscribe_v5(mosq, NULL, topic, qos, 0, props);
	mosquitto_property_free_all(&props);
	if (rc)
		die("subscribe", rc);
	while (!s->subacked)
		pump(mosq, 100);
}

static void close_client(struct mosquitto *mosq, struct state *s)
{
	mosquitto_disconnect(mosq);
	while (!s->disconnected && mosquitto_loop(mosq, 100, 1) == MOSQ_ERR_SUCCESS)
		;
	mosquitto_destroy(mosq);
}

static void report_received(struct state *s, double cpu0, const char *extra)
{
	double span = s->last - s->first;
	double cpu = cpu_now() - cpu0;
	double rate = (s->received > 1 && span > 0) ? (double)(s->received - 1) / span : 0;
	printf("result received=%ld rate=%.6g cpu_us=%.6g span_s=%.6g%s rss_kib=%ld\n",
	       s->received, rate, cpu * 1e6 / (double)(s->received ? s->received : 1),
	       span, extra, max_rss_kib());
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile(double *sorted, long n, double fraction)
{
	long rank;
	if (n == 0)
		return 0;
	/* nearest rank: ceil(fraction * n), 1-based */
	rank = (long)(fraction * (double)n);
	if ((double)rank < fraction * (double)n)
		rank++;
	rank--;
	if (rank < 0)
		rank = 0;
	if (rank > n - 1)
		rank = n - 1;
	return sorted[rank];
}

static void report_round_trips(double *samples, long n, double cpu)
{
	double sum = 0;
	for (long i = 0; i < n; i++)
		sum += samples[i];
	qsort(samples, (size_t)n, sizeof *samples, cmp_double);
	printf("result n=%ld p50_us=%.6g p99_us=%.6g mean_us=%.6g cpu_us=%.6g rss_kib=%ld\n",
	       n, percentile(samples, n, 0.5) * 1e6, percentile(samples, n, 0.99) * 1e6,
	       n ? sum / (double)n * 1e6 : 0, cpu * 1e6 / (double)(n ? n : 1),
	       max_rss_kib());
	fflush(stdout);
}

/* Keep the connection serviced until the harness closes our standard input. */
static void wait_stdin_eof(struct mosquitto *mosq)
{
	char buf[4096];
	for (;;) {
		struct pollfd pfd = {.fd = 0, .events = POLLIN};
		if (poll(&pfd, 1, 0) > 0) {
			if (read(0, buf, sizeof buf) <= 0)
				return;
			continue;
		}
		pump(mosq, 50);
	}
}

int main(int argc, char **argv)
{
	struct state s = {0};
	struct mosquitto *mosq;
	const char *role, *host, *topic;
	int port, size;
	char *payload;
	double cpu0 = 0;

	if (argc == 2 && !strcmp(argv[1], "version")) {
		int major, minor, rev;
		mosquitto_lib_version(&major, &minor, &rev);
		printf("%d.%d.%d\n", major, minor, rev);
		return 0;
	}
	if (argc != 10) {
		fprintf(stderr, "usage: %s ROLE HOST PORT TOPIC QOS SIZE COUNT NFILTERS BUDGET\n",
			argv[0]);
		return 2;
	}
	role = argv[1];
	host = argv[2];
	port = atoi(argv[3]);
	topic = argv[4];
	s.qos = atoi(argv[5]);
	size = atoi(argv[6]);
	s.count = atol(argv[7]);
	s.nfilters = atoi(argv[8]);
	s.budget = atof(argv[9]);
	payload = malloc((size_t)size + 1);
	for (int i = 0; i < size; i++)
		payload[i] = "0123456789abcdef"[i % 16];

	mosquitto_lib_init();

	if (!strcmp(role, "sub") || !strcmp(role, "filters")) {
		char extra[128] = "";
		mosq = open_client(&s, host, port);
		if (!strcmp(role, "filters")) {
			size_t len = strlen(topic) + 32;
			char *filter = malloc(len);
			double t0 = now();
			s.counts = calloc((size_t)s.nfilters, sizeof *s.counts);
			for (int i = 0; i < s.nfilters; i++) {
				snprintf(filter, len, "%s/%d/+", topic, i);
				subscribe(mosq, &s, filter, s.qos, (uint32_t)i + 1);
			}
			snprintf(extra, sizeof extra, " subscribe_ms=%.6g", (now() - t0) * 1e3);
			free(filter);
		} else {
			subscribe(mosq, &s, topic, s.qos, 0);
		}
		ready();
		s.started = now();
		cpu0 = cpu_now();
		while (!should_stop(&s))
			pump(mosq, 100);
		if (s.counts) {
			long lo = s.counts[0], hi = s.counts[0];
			size_t used = strlen(extra);
			for (int i = 1; i < s.nfilters; i++) {
				if (s.counts[i] < lo)
					lo = s.counts[i];
				if (s.counts[i] > hi)
					hi = s.counts[i];
			}
			snprintf(extra + used, sizeof extra - used, " spread=%ld", hi - lo);
		}
		report_received(&s, cpu0, extra);
		close_client(mosq, &s);
	} else if (!strcmp(role, "pub")) {
		int ntopics = s.nfilters ? s.nfilters : 1;
		size_t len = strlen(topic) + 32;
		char **topics = malloc(sizeof *topics * (size_t)ntopics);
		double t0, span;
		for (int i = 0; i < ntopics; i++) {
			topics[i] = malloc(len);
			if (s.nfilters)
				snprintf(topics[i], len, "%s/%d/v", topic, i);
			else
				snprintf(topics[i], len, "%s", topic);
		}
		mosq = open_client(&s, host, port);
		ready();
		t0 = now();
		cpu0 = cpu_now();
		for (long i = 0; i < s.count; i++) {
			int rc;
			while (s.qos && s.published - s.completed >= WINDOW)
				pump(mosq, 100);
			rc = mosquitto_publish_v5(mosq, NULL, topics[i % ntopics], size,
						  payload, s.qos, false, NULL);
			if (rc)
				die("publish", rc);
			s.published++;
			if (!s.qos && i % 64 == 63)
				pump(mosq, 0);
		}
		while (s.completed < s.count || mosquitto_want_write(mosq))
			pump(mosq, 100);
		span = now() - t0;
		wait_stdin_eof(mosq);
		printf("result sent=%ld pub_rate=%.6g cpu_us=%.6g rss_kib=%ld\n", s.count,
		       span > 0 ? (double)s.count / span : 0,
		       (cpu_now() - cpu0) * 1e6 / (double)s.count, max_rss_kib());
		fflush(stdout);
		close_client(mosq, &s);
	} else if (!strcmp(role, "pingpong")) {
		double *samples = malloc(sizeof *samples * (size_t)(s.count + 1));
		long n = 0;
		double deadline = 0;
		mosq = open_client(&s, host, port);
		subscribe(mosq, &s, topic, s.qos, 0);
		ready();
		for (long i = 0; i < WARMUP + s.count; i++) {
			double t0 = now();
			s.echoed = false;
			if (i == WARMUP) {
				cpu0 = cpu_now();
				deadline = t0 + s.budget;
			}
			if (mosquitto_publish_v5(mosq, NULL, topic, size, payload, s.qos,
						 false, NULL))
				die("publish", MOSQ_ERR_UNKNOWN);
			s.published++;
			while (!s.echoed || s.completed < s.published)
				pump(mosq, 100);
			if (i >= WARMUP) {
				double t1 = now();
				samples[n++] = t1 - t0;
				if (t1 > deadline)
					break;
			}
		}
		report_round_trips(samples, n, cpu_now() - cpu0);
		close_client(mosq, &s);
	} else if (!strcmp(role, "connect")) {
		double *samples = malloc(sizeof *samples * (size_t)(s.count + 1));
		long n = 0;
		double deadline = 0;
		ready();
		for (long i = -WARMUP_CONNECTS; i < s.count; i++) {
			double t0 = now(), t1;
			if (i == 0) {
				cpu0 = cpu_now();
				deadline = t0 + s.budget;
			}
			mosq = open_client(&s, host, port);
			subscribe(mosq, &s, topic, s.qos, 0);
			close_client(mosq, &s);
			t1 = now();
			if (i < 0)
				continue;
			samples[n++] = t1 - t0;
			if (t1 > deadline)
				break;
		}
		report_round_trips(samples, n, cpu_now() - cpu0);
	} else {
		fprintf(stderr, "mosq_bench: unknown role %s\n", role);
		return 2;
	}
	mosquitto_lib_cleanup();
	return 0;
}
