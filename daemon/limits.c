/*
 * Connection accounting per uid (see limits.h).  The accept loop admits,
 * whichever thread closes a connection releases: one mutex over a small
 * table with one row per uid that holds connections now, so the table never
 * grows beyond the global cap whatever uids come and go.
 */
#include "limits.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Refusals logged: one, then at most one per this many seconds. */
#define REFUSAL_LOG_INTERVAL_S 10

struct user_count {
	uid_t uid;
	unsigned n;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_per_user = FP_LIMIT_PER_USER_DEFAULT;
static unsigned g_global = FP_LIMIT_GLOBAL_DEFAULT;
static struct user_count *g_users;
static size_t g_nusers, g_cap;
static unsigned g_clients, g_root_clients;
static unsigned long g_refused, g_unlogged;
static bool g_logged;
static time_t g_last_log;

void fp_limits_set(unsigned per_user, unsigned global)
{
	pthread_mutex_lock(&g_lock);
	if (per_user)
		g_per_user = per_user;
	if (global)
		g_global = global;
	pthread_mutex_unlock(&g_lock);
}

static struct user_count *find(uid_t uid)
{
	for (size_t i = 0; i < g_nusers; i++)
		if (g_users[i].uid == uid)
			return &g_users[i];
	return NULL;
}

/* Under g_lock. */
static int refused(void)
{
	g_refused++;
	g_unlogged++;
	return -1;
}

int fp_limits_admit(uid_t uid, char *msg, size_t msglen)
{
	int rc = 0;
	pthread_mutex_lock(&g_lock);
	if (uid == 0) {
		g_root_clients++;
		goto out;
	}
	struct user_count *u = find(uid);
	if (u && u->n >= g_per_user) {
		snprintf(msg, msglen,
			 "fpd serves %u connections of uid %u already, the most one user may hold; "
			 "end some of this user's fpctl sessions and try again (root can raise the "
			 "limit: fpd --max-clients-per-user)",
			 g_per_user, (unsigned)uid);
		rc = refused();
		goto out;
	}
	if (g_clients >= g_global) {
		snprintf(msg, msglen,
			 "fpd serves %u connections of users other than root already, the most it "
			 "takes; try again later (root is always served and can raise the limit: "
			 "fpd --max-clients)",
			 g_global);
		rc = refused();
		goto out;
	}
	if (!u) {
		if (g_nusers == g_cap) {
			size_t cap = g_cap ? 2 * g_cap : 16;
			struct user_count *grown = realloc(g_users, cap * sizeof(*grown));
			if (!grown) {
				snprintf(msg, msglen, "fpd is out of memory; try again later");
				rc = refused();
				goto out;
			}
			g_users = grown;
			g_cap = cap;
		}
		u = &g_users[g_nusers++];
		u->uid = uid;
		u->n = 0;
	}
	u->n++;
	g_clients++;
out:
	pthread_mutex_unlock(&g_lock);
	return rc;
}

void fp_limits_release(uid_t uid)
{
	pthread_mutex_lock(&g_lock);
	if (uid == 0) {
		g_root_clients--;
	} else {
		struct user_count *u = find(uid);
		if (u) {
			g_clients--;
			/* A uid with no connection left gives its row back. */
			if (--u->n == 0)
				*u = g_users[--g_nusers];
		}
	}
	pthread_mutex_unlock(&g_lock);
}

bool fp_limits_log_due(unsigned long *suppressed)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	bool due = false;
	pthread_mutex_lock(&g_lock);
	if (!g_logged || now.tv_sec - g_last_log >= REFUSAL_LOG_INTERVAL_S) {
		due = true;
		/* The refusal about to be logged is not one of those suppressed. */
		*suppressed = g_unlogged ? g_unlogged - 1 : 0;
		g_unlogged = 0;
		g_logged = true;
		g_last_log = now.tv_sec;
	}
	pthread_mutex_unlock(&g_lock);
	return due;
}

void fp_limits_get(struct fp_limits_state *s)
{
	pthread_mutex_lock(&g_lock);
	s->per_user = g_per_user;
	s->global = g_global;
	s->clients = g_clients;
	s->root_clients = g_root_clients;
	s->refused = g_refused;
	pthread_mutex_unlock(&g_lock);
}
