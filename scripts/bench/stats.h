/* Statistics shared by the benchmarks (bench_core, bench_shared): header
 * only, every function static inline. */
#ifndef FORKSHIM_BENCH_STATS_H
#define FORKSHIM_BENCH_STATS_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static inline int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v. */
static inline double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), compare_doubles);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline double mean(const double *v, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += v[i];
	return sum / (double)n;
}

/* ---- statistics over rounds ----
 * A round is one turn of every arm; its figure for a comparison
 * is the ratio (or difference) of the arms' medians in that round.  Over
 * the rounds: the median, the range, and a distribution-free confidence
 * interval of the median of about 95% (order statistics: the k-th
 * smallest and k-th largest of n, with k the largest rank for which
 * P(Binomial(n, 1/2) < k) <= 2.5%).  A target is "ok" when the whole
 * interval meets it, "MISSED" when none of it does, and "unresolved"
 * when the noise is wider than the distance to the target. */
struct spread {
	double med, lo, hi, ci_lo, ci_hi;
	double coverage; /* of [ci_lo, ci_hi]; 0 when n is too small */
};

static inline void stat_of(double *v, size_t n, struct spread *s)
{
	double pmf = 1, below = 0;
	size_t k = 0;

	s->med = median(v, n); /* sorts */
	s->lo = v[0];
	s->hi = v[n - 1];
	for (size_t i = 0; i < n; i++)
		pmf /= 2; /* P(X = 0) */
	for (size_t j = 0; j < n; j++) {
		if (below + pmf > 0.025)
			break;
		below += pmf; /* P(X <= j) */
		k = j + 1;
		pmf = pmf * (double)(n - j) / (double)(j + 1);
	}
	if (k == 0) {
		s->ci_lo = s->lo;
		s->ci_hi = s->hi;
		s->coverage = 0;
		return;
	}
	s->ci_lo = v[k - 1];
	s->ci_hi = v[n - k];
	s->coverage = 1 - 2 * below;
}

static inline const char *verdict(const struct spread *s, double limit,
                                  int at_most)
{
	if (s->coverage == 0)
		return "unresolved (too few rounds)";
	if (at_most ? s->ci_hi <= limit : s->ci_lo >= limit)
		return "ok";
	if (at_most ? s->ci_lo > limit : s->ci_hi < limit)
		return "MISSED";
	return "unresolved";
}

/* "1.012 [0.990-1.031]": median and interval (the range when n < 6). */
static inline void print_stat(const char *fmt, const struct spread *s)
{
	printf(fmt, s->med);
	printf(" [");
	printf(fmt, s->ci_lo);
	printf(" to ");
	printf(fmt, s->ci_hi);
	printf("]");
}

#endif
