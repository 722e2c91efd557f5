/*
 * echo_peer: the null enhancer. Attaches to a channel as the server and sends every frame back
 * unchanged, flagged passthrough, so `play` measures what the bridge itself costs.
 *
 *   echo_peer --channel NAME [--frames N] [--idle-exit-ms T]
 *
 * Exits after an end-of-stream frame (echoed back first), after N frames, or after T ms without a
 * frame (default 10000). Exit status 0, or 1 on a channel error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sonoedge/bridge.h"

int main(int argc, char **argv) {
    const char *name = NULL;
    long frames = 0, idle_ms = 10000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--channel") == 0) name = argv[i + 1];
        else if (strcmp(argv[i], "--frames") == 0) frames = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--idle-exit-ms") == 0) idle_ms = atol(argv[i + 1]);
    }
    if (name == NULL || argc % 2 == 0) {
        fprintf(stderr, "usage: echo_peer --channel NAME [--frames N] [--idle-exit-ms T]\n");
        return 2;
    }
    sb_channel *ch = NULL;
    sb_status st = sb_channel_open(name, SB_ROLE_SERVER, NULL, &ch);
    if (st != SB_OK) {
        fprintf(stderr, "echo_peer: cannot open channel %s: %s\n", name, sb_status_string(st));
        return 1;
    }
    sb_stats stats;
    sb_channel_stats(ch, &stats);
    uint8_t *pixels = malloc(stats.slot_bytes);
    long echoed = 0;
    int rc = 0;
    uint64_t last_frame = sb_now_ns();
    while (pixels != NULL && (frames == 0 || echoed < frames)) {
        sb_frame_info f;
        st = sb_channel_read(ch, &f, pixels, stats.slot_bytes, 100);
        if (st == SB_ERR_TIMEOUT || st == SB_ERR_PEER_GONE) { /* the client may come back */
            if ((sb_now_ns() - last_frame) / 1000000 > (uint64_t)idle_ms) break;
            continue;
        }
        if (st != SB_OK) {
            fprintf(stderr, "echo_peer: read: %s\n", sb_status_string(st));
            rc = 1;
            break;
        }
        last_frame = sb_now_ns();
        if (!(f.flags & SB_FLAG_END_OF_STREAM)) f.flags |= SB_FLAG_PASSTHROUGH;
        st = sb_channel_write(ch, &f, pixels, 1000);
        if (st != SB_OK) {
            fprintf(stderr, "echo_peer: write: %s\n", sb_status_string(st));
            rc = 1;
            break;
        }
        if (f.flags & SB_FLAG_END_OF_STREAM) break;
        echoed++;
    }
    free(pixels);
    sb_channel_close(ch);
    return rc;
}
