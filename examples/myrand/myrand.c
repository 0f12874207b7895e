/* myrand: prints N random numbers, one per line (N is the first argument, default 1).
 * The seed talk's example program, written for wrun's examples. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
    if (n < 0 || n > 1000000) {
        fprintf(stderr, "myrand: %s: a count from 0 to 1000000\n", argv[1]);
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srandom((unsigned)(ts.tv_nsec ^ ts.tv_sec));
    for (long i = 0; i < n; i++)
        printf("%ld\n", random());
    return 0;
}
