/*
 * mpi_check: two ranks, results checked. Built with mpicc by `cargo xtask test` and run
 * one rank per network namespace over `--mca pml cm --mca mtl ofi` (the afxdp provider).
 *
 *   mpi_check [iters]
 *
 * 1. Ping-pong: for each size, rank 0 sends a pattern, rank 1 checks it and sends back
 *    its own pattern, rank 0 checks that; `iters` round trips per size (fewer for large
 *    sizes). Prints per size: RESULT pingpong size=N iters=N p50_us=X avg_us=X
 *    (half round trips, like osu_latency) and MB/s.
 * 2. MPI_Allreduce (MPI_SUM over int64) of 1, 1000 and 100000 elements, each rank
 *    contributing rank-dependent values; every element checked against the closed form.
 *    Prints: RESULT allreduce count=N ok
 * 3. Matched probes (MPI_Mprobe, MPI_Improbe, MPI_Mrecv; over mtl ofi these are
 *    FI_PEEK | FI_CLAIM and FI_CLAIM): rank 1 sends two messages with one tag and several
 *    with others, of sizes from 1 B to 1 MiB; rank 0 probes the first of the shared tag,
 *    receives the second with a plain MPI_Recv (the probed one is reserved and must not
 *    be taken), then receives the probed one from its handle, then probes and receives
 *    the rest with MPI_ANY_TAG, each sized from its probe. Contents and counts checked.
 *    Prints: RESULT mprobe messages=N ok
 * Any mismatch prints "MISMATCH ..." and aborts with a non-zero exit.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char pattern(int rank, size_t size, int iter, size_t i)
{
	return (unsigned char)(rank * 131 + size * 7 + iter * 13 + i * 31 + (i >> 8));
}

static void fill(unsigned char *b, int rank, size_t size, int iter)
{
	for (size_t i = 0; i < size; i++)
		b[i] = pattern(rank, size, iter, i);
}

static void check(const unsigned char *b, int from, size_t size, int iter)
{
	for (size_t i = 0; i < size; i++) {
		if (b[i] != pattern(from, size, iter, i)) {
			fprintf(stderr, "MISMATCH pingpong size=%zu iter=%d byte=%zu got=%u want=%u\n", size, iter, i,
				b[i], pattern(from, size, iter, i));
			MPI_Abort(MPI_COMM_WORLD, 2);
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int rank, size;
	int iters = argc > 1 ? atoi(argv[1]) : 200;
	const size_t sizes[] = { 1, 64, 1024, 16384, 65536, 1 << 20, 4 << 20 };

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (size != 2) {
		if (rank == 0)
			fprintf(stderr, "mpi_check needs exactly 2 ranks, got %d\n", size);
		MPI_Finalize();
		return 1;
	}
	int peer = 1 - rank;
	unsigned char *sbuf = malloc(4 << 20), *rbuf = malloc(4 << 20);
	double *rtt = malloc(sizeof(double) * (iters > 0 ? iters : 1));
	if (!sbuf || !rbuf || !rtt)
		MPI_Abort(MPI_COMM_WORLD, 3);

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		int it = n >= (1 << 20) ? (iters / 20 > 2 ? iters / 20 : 2) : iters;
		MPI_Barrier(MPI_COMM_WORLD);
		double total = 0;
		for (int i = 0; i < it; i++) {
			fill(sbuf, rank, n, i);
			double t0 = MPI_Wtime();
			if (rank == 0) {
				MPI_Send(sbuf, (int)n, MPI_BYTE, peer, 100 + i % 7, MPI_COMM_WORLD);
				MPI_Recv(rbuf, (int)n, MPI_BYTE, peer, 200 + i % 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			} else {
				MPI_Recv(rbuf, (int)n, MPI_BYTE, peer, 100 + i % 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				MPI_Send(sbuf, (int)n, MPI_BYTE, peer, 200 + i % 5, MPI_COMM_WORLD);
			}
			double dt = MPI_Wtime() - t0;
			check(rbuf, peer, n, i);
			rtt[i] = dt * 1e6 / 2;
			total += dt;
		}
		if (rank == 0) {
			qsort(rtt, it, sizeof(double), cmp_double);
			printf("RESULT pingpong size=%zu iters=%d p50_us=%.2f avg_us=%.2f mb_s=%.1f\n", n, it, rtt[it / 2],
			       total * 1e6 / 2 / it, 2.0 * n * it / total / 1e6);
			fflush(stdout);
		}
	}

	const int counts[] = { 1, 1000, 100000 };
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		int n = counts[c];
		int64_t *in = malloc(sizeof(int64_t) * n), *out = malloc(sizeof(int64_t) * n);
		if (!in || !out)
			MPI_Abort(MPI_COMM_WORLD, 3);
		for (int i = 0; i < n; i++)
			in[i] = (int64_t)(rank + 1) * (i + 1) + (int64_t)rank * 1000003;
		MPI_Allreduce(in, out, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
		for (int i = 0; i < n; i++) {
			int64_t want = (int64_t)3 * (i + 1) + 1000003; /* ranks 0 and 1 */
			if (out[i] != want) {
				fprintf(stderr, "MISMATCH allreduce count=%d i=%d got=%lld want=%lld\n", n, i,
					(long long)out[i], (long long)want);
				MPI_Abort(MPI_COMM_WORLD, 2);
			}
		}
		if (rank == 0) {
			printf("RESULT allreduce count=%d ok\n", n);
			fflush(stdout);
		}
		free(in);
		free(out);
	}
	/* Matched probes. */
	const struct { int tag; int size; } probed[] = {
		{ 400, 3000 }, { 400, 17 }, { 401, 1 }, { 402, 65536 }, { 403, 1 << 20 }, { 404, 70001 },
	};
	const int nprobed = sizeof(probed) / sizeof(probed[0]);
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 1) {
		for (int m = 0; m < nprobed; m++) {
			fill(sbuf, rank, probed[m].size, 1000 + m);
			MPI_Send(sbuf, probed[m].size, MPI_BYTE, 0, probed[m].tag, MPI_COMM_WORLD);
		}
	} else {
		MPI_Message first;
		MPI_Status st;
		int count;
		MPI_Mprobe(1, 400, MPI_COMM_WORLD, &first, &st);
		MPI_Get_count(&st, MPI_BYTE, &count);
		if (count != probed[0].size) {
			fprintf(stderr, "MISMATCH mprobe first count=%d want=%d\n", count, probed[0].size);
			MPI_Abort(MPI_COMM_WORLD, 2);
		}
		/* The probed message is reserved: a plain receive of that tag takes the next one. */
		MPI_Recv(rbuf, 4 << 20, MPI_BYTE, 1, 400, MPI_COMM_WORLD, &st);
		MPI_Get_count(&st, MPI_BYTE, &count);
		if (count != probed[1].size) {
			fprintf(stderr, "MISMATCH mprobe: MPI_Recv took %d B, want the second message's %d\n", count,
				probed[1].size);
			MPI_Abort(MPI_COMM_WORLD, 2);
		}
		check(rbuf, 1, probed[1].size, 1001);
		MPI_Mrecv(rbuf, probed[0].size, MPI_BYTE, &first, &st);
		check(rbuf, 1, probed[0].size, 1000);
		int got = 2;
		while (got < nprobed) {
			int flag = 0;
			MPI_Message msg;
			MPI_Improbe(1, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &msg, &st);
			if (!flag)
				continue;
			MPI_Get_count(&st, MPI_BYTE, &count);
			int m = got;
			if (st.MPI_TAG != probed[m].tag || count != probed[m].size) {
				fprintf(stderr, "MISMATCH improbe tag=%d count=%d want tag=%d count=%d\n", st.MPI_TAG, count,
					probed[m].tag, probed[m].size);
				MPI_Abort(MPI_COMM_WORLD, 2);
			}
			unsigned char *b = malloc(count > 0 ? count : 1);
			if (!b)
				MPI_Abort(MPI_COMM_WORLD, 3);
			MPI_Mrecv(b, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
			check(b, 1, count, 1000 + m);
			free(b);
			got++;
		}
		printf("RESULT mprobe messages=%d ok\n", nprobed);
		fflush(stdout);
	}

	free(sbuf);
	free(rbuf);
	free(rtt);
	MPI_Finalize();
	return 0;
}
