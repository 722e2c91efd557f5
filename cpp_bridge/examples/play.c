/*
 * play: stream frames into a sonoedge channel, read the enhanced frames back, print latency.
 *
 *   play --channel NAME --input clip.pgm [--frames N] [--inflight K] [--output out.pgm] [--eos]
 *   play --channel NAME --phantom 300 --width 512 --height 512
 *
 * Input is a PGM stream: binary P5 images (maxval 255) one after another in one file, as written
 * by `for f in *.pgm; do cat "$f"; done > clip.pgm` or by netpbm tools; or --phantom N frames it
 * synthesises. Each frame carries its index as frame_id and the send time (CLOCK_MONOTONIC) as
 * timestamp_ns; the enhancer carries both through unchanged, so latency = now - timestamp_ns.
 *
 * With --inflight 1 (default) play waits for each frame to come back before sending the next (the
 * round-trip latency); with K > 1 it keeps up to K frames in flight (throughput). The reader gets
 * the newest frame, so a frame older than one already received is dropped: every frame sent is
 * reported as enhanced, passed through, or dropped. --output writes the received frames as a PGM
 * stream with "# frame_id=I flags=F" in each header.
 *
 * Exit status: 0 when every frame is accounted for, 1 on a channel error, 2 on bad usage or input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sonoedge/bridge.h"

typedef struct options {
    const char *channel, *input, *output;
    long phantom, frames, inflight, timeout_ms, width, height, slots;
    int eos, quiet;
} options;

/* Where frames come from: a PGM stream read one frame at a time, or phantom frames made up front
 * (a few, cycled, so making them does not slow the stream down). */
typedef struct feed {
    FILE *file;
    const char *path;
    uint32_t width, height;
    uint8_t *phantom;
    size_t phantom_count, index;
} feed;

#define PHANTOM_DISTINCT 16

static int usage(const char *why) {
    fprintf(stderr,
            "play: %s\nusage: play --channel NAME (--input FILE.pgm | --phantom N [--width W --height H])\n"
            "            [--frames N] [--inflight K] [--timeout-ms T] [--slots S] [--output OUT.pgm] [--eos] [--quiet]\n",
            why);
    return 2;
}

static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof(*o));
    o->inflight = 1;
    o->timeout_ms = 5000;
    o->width = 512;
    o->height = 512;
    o->slots = 8;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--eos") == 0) { o->eos = 1; continue; }
        if (strcmp(a, "--quiet") == 0) { o->quiet = 1; continue; }
        if (v == NULL) return usage("missing value after an option");
        ++i;
        if (strcmp(a, "--channel") == 0) o->channel = v;
        else if (strcmp(a, "--input") == 0) o->input = v;
        else if (strcmp(a, "--output") == 0) o->output = v;
        else if (strcmp(a, "--phantom") == 0) o->phantom = atol(v);
        else if (strcmp(a, "--frames") == 0) o->frames = atol(v);
        else if (strcmp(a, "--inflight") == 0) o->inflight = atol(v);
        else if (strcmp(a, "--timeout-ms") == 0) o->timeout_ms = atol(v);
        else if (strcmp(a, "--width") == 0) o->width = atol(v);
        else if (strcmp(a, "--height") == 0) o->height = atol(v);
        else if (strcmp(a, "--slots") == 0) o->slots = atol(v);
        else return usage("unknown option");
    }
    if (o->channel == NULL) return usage("--channel is required");
    if ((o->input == NULL) == (o->phantom <= 0)) return usage("give exactly one of --input and --phantom");
    if (o->inflight < 1 || o->width < 1 || o->height < 1 || o->slots < 2) return usage("sizes must be positive");
    return 0;
}

/* Skip whitespace and '#' comments between PGM header tokens; read one unsigned number. */
static int pgm_number(FILE *f, long *out) {
    int c = fgetc(f);
    for (;;) {
        if (c == '#') {
            while (c != '\n' && c != EOF) c = fgetc(f);
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            c = fgetc(f);
        } else {
            break;
        }
    }
    if (c < '0' || c > '9') return -1;
    long n = 0;
    while (c >= '0' && c <= '9') {
        n = n * 10 + (c - '0');
        if (n > 100000) return -1;
        c = fgetc(f);
    }
    *out = n; /* c is the single whitespace after the number */
    return 0;
}

/* Read one P5 header; 1: read, 0: clean end of file, -1: not a PGM frame. */
static int pgm_header(feed *f, long *w, long *h) {
    int m1 = fgetc(f->file);
    if (m1 == EOF) return 0;
    long maxval;
    if (m1 != 'P' || fgetc(f->file) != '5' || pgm_number(f->file, w) || pgm_number(f->file, h) ||
        pgm_number(f->file, &maxval) || maxval != 255 || *w < 1 || *h < 1) {
        fprintf(stderr, "play: %s frame %zu is not a binary 8-bit PGM (P5, maxval 255)\n", f->path, f->index);
        return -1;
    }
    return 1;
}

static int feed_open_pgm(feed *f, const char *path) {
    memset(f, 0, sizeof(*f));
    f->path = path;
    f->file = fopen(path, "rb");
    if (f->file == NULL) {
        fprintf(stderr, "play: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    long w, h;
    int got = pgm_header(f, &w, &h);
    if (got == 0) fprintf(stderr, "play: %s holds no frames\n", path);
    if (got != 1 || fseek(f->file, 0, SEEK_SET) != 0) return -1; /* the size is known; start over */
    f->width = (uint32_t)w;
    f->height = (uint32_t)h;
    return 0;
}

/* Phantom frames: deterministic speckle with a bright disc that moves a little every frame. */
static int feed_open_phantom(feed *f, long w, long h) {
    memset(f, 0, sizeof(*f));
    f->path = "phantom";
    f->width = (uint32_t)w;
    f->height = (uint32_t)h;
    f->phantom_count = PHANTOM_DISTINCT;
    f->phantom = malloc((size_t)PHANTOM_DISTINCT * (size_t)w * (size_t)h);
    if (f->phantom == NULL) return -1;
    uint32_t state = 12345u;
    for (long k = 0; k < PHANTOM_DISTINCT; ++k) {
        uint8_t *p = f->phantom + (size_t)k * (size_t)w * (size_t)h;
        long cx = w / 4 + (k * 3) % (w / 2 + 1), cy = h / 2, r = h / 8 + 1;
        for (long y = 0; y < h; ++y) {
            for (long x = 0; x < w; ++x) {
                state = state * 1664525u + 1013904223u; /* Numerical Recipes LCG */
                int speckle = (int)(state >> 26);       /* 0..63 */
                int inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
                p[y * w + x] = (uint8_t)(speckle + (inside ? 150 : 40));
            }
        }
    }
    return 0;
}

/* The next frame into `out` (width * height bytes): 1, 0 at the end of a file, -1 on bad input. */
static int feed_next(feed *f, uint8_t *out) {
    const size_t bytes = (size_t)f->width * f->height;
    if (f->phantom != NULL) {
        memcpy(out, f->phantom + (f->index++ % f->phantom_count) * bytes, bytes);
        return 1;
    }
    long w, h;
    int got = pgm_header(f, &w, &h);
    if (got != 1) return got;
    if ((uint32_t)w != f->width || (uint32_t)h != f->height) {
        fprintf(stderr, "play: %s frame %zu is %ldx%ld, the first was %ux%u\n", f->path, f->index, w, h, f->width,
                f->height);
        return -1;
    }
    if (fread(out, 1, bytes, f->file) != bytes) {
        fprintf(stderr, "play: %s frame %zu is truncated\n", f->path, f->index);
        return -1;
    }
    f->index++;
    return 1;
}

static void feed_close(feed *f) {
    if (f->file) fclose(f->file);
    free(f->phantom);
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void write_pgm(FILE *f, const sb_frame_info *info, const uint8_t *pixels) {
    fprintf(f, "P5\n# frame_id=%llu flags=%u\n%u %u\n255\n", (unsigned long long)info->frame_id, info->flags,
            info->width, info->height);
    for (uint32_t y = 0; y < info->height; ++y) fwrite(pixels + (size_t)y * info->stride, 1, info->width, f);
}

int main(int argc, char **argv) {
    options o;
    int bad = parse_options(argc, argv, &o);
    if (bad) return bad;
    feed in;
    if (o.input ? feed_open_pgm(&in, o.input) : feed_open_phantom(&in, o.width, o.height)) {
        feed_close(&in);
        return 2;
    }
    size_t limit = o.input ? SIZE_MAX : (size_t)o.phantom;
    if (o.frames > 0 && (size_t)o.frames < limit) limit = (size_t)o.frames;
    const size_t frame_bytes = (size_t)in.width * in.height;

    sb_channel_config cfg;
    sb_channel_config_default(&cfg);
    cfg.slot_count = (uint32_t)o.slots;
    cfg.slot_bytes = frame_bytes;
    sb_channel *ch = NULL;
    sb_status st = sb_channel_open(o.channel, SB_ROLE_CLIENT, &cfg, &ch);
    if (st == SB_ERR_GEOMETRY_MISMATCH) { /* the enhancer created it first: take its geometry */
        cfg.slot_count = 0;
        cfg.slot_bytes = 0;
        st = sb_channel_open(o.channel, SB_ROLE_CLIENT, &cfg, &ch);
    }
    if (st != SB_OK) {
        fprintf(stderr, "play: cannot open channel %s: %s\n", o.channel, sb_status_string(st));
        feed_close(&in);
        return 1;
    }
    FILE *out = NULL;
    if (o.output && (out = fopen(o.output, "wb")) == NULL) {
        fprintf(stderr, "play: cannot write %s: %s\n", o.output, strerror(errno));
        sb_channel_close(ch);
        feed_close(&in);
        return 2;
    }

    uint8_t *frame = malloc(frame_bytes), *back = malloc(frame_bytes);
    size_t latency_cap = 1024;
    uint64_t *latency = malloc(latency_cap * sizeof(uint64_t));
    size_t sent = 0, received = 0, enhanced = 0, passthrough = 0;
    long long newest = -1; /* highest frame_id received */
    int failed = frame == NULL || back == NULL || latency == NULL, input_done = 0;
    const uint64_t t_start = sb_now_ns();
    while (!failed) {
        if (!input_done && sent < limit && (long long)sent - (newest + 1) < o.inflight) {
            int got = feed_next(&in, frame);
            if (got <= 0) {
                input_done = 1;
                failed = got < 0 ? 2 : 0;
                continue;
            }
            sb_frame_info f = {in.width, in.height, in.width, SB_FORMAT_GRAY8, sent, sb_now_ns(), 0, 0};
            st = sb_channel_write(ch, &f, frame, (int)o.timeout_ms);
            if (st != SB_OK) {
                fprintf(stderr, "play: frame %zu: %s\n", sent, sb_status_string(st));
                failed = 1;
                break;
            }
            sent++;
            continue;
        }
        if ((input_done || sent >= limit) && newest + 1 >= (long long)sent) break; /* all back */
        sb_frame_info got;
        st = sb_channel_read(ch, &got, back, frame_bytes, (int)o.timeout_ms);
        if (st == SB_ERR_TIMEOUT || st == SB_ERR_PEER_GONE) {
            fprintf(stderr, "play: waiting for frame %lld: %s\n", newest + 1, sb_status_string(st));
            break; /* the frames still in flight are counted as dropped */
        }
        if (st != SB_OK) {
            fprintf(stderr, "play: read: %s\n", sb_status_string(st));
            failed = 1;
            break;
        }
        if ((long long)got.frame_id <= newest || got.frame_id >= sent || (got.flags & SB_FLAG_END_OF_STREAM) ||
            got.width != in.width || got.height != in.height || got.format != SB_FORMAT_GRAY8) {
            fprintf(stderr, "play: unexpected frame_id %llu (%ux%u, newest %lld, sent %zu)\n",
                    (unsigned long long)got.frame_id, got.width, got.height, newest, sent);
            failed = 1;
            break;
        }
        uint64_t us = (sb_now_ns() - got.timestamp_ns) / 1000;
        if (received == latency_cap) {
            uint64_t *grown = realloc(latency, 2 * latency_cap * sizeof(uint64_t));
            if (grown == NULL) {
                failed = 1;
                break;
            }
            latency = grown;
            latency_cap *= 2;
        }
        latency[received++] = us;
        enhanced += (got.flags & SB_FLAG_ENHANCED) != 0;
        passthrough += (got.flags & SB_FLAG_PASSTHROUGH) != 0;
        newest = (long long)got.frame_id;
        if (!o.quiet)
            printf("frame %llu latency_us %llu %s\n", (unsigned long long)got.frame_id, (unsigned long long)us,
                   (got.flags & SB_FLAG_ENHANCED) ? "enhanced" : (got.flags & SB_FLAG_PASSTHROUGH) ? "passthrough" : "unflagged");
        if (out) write_pgm(out, &got, back);
    }
    const double seconds = (double)(sb_now_ns() - t_start) / 1e9;

    if (o.eos && !failed) { /* tell the enhancer the stream is over; wait for it to say the same */
        sb_frame_info eos = {0, 0, 0, SB_FORMAT_GRAY8, sent, sb_now_ns(), SB_FLAG_END_OF_STREAM, 0};
        st = sb_channel_write(ch, &eos, NULL, (int)o.timeout_ms);
        for (int tries = 0; st == SB_OK && tries < 1000; ++tries) {
            sb_frame_info got;
            st = sb_channel_read(ch, &got, back, frame_bytes, (int)o.timeout_ms);
            if (st == SB_OK && (got.flags & SB_FLAG_END_OF_STREAM)) break;
        }
        if (st != SB_OK) fprintf(stderr, "play: end of stream not acknowledged: %s\n", sb_status_string(st));
    }

    sb_stats stats;
    sb_channel_stats(ch, &stats);
    if (latency != NULL) qsort(latency, received, sizeof(uint64_t), compare_u64);
    size_t p99 = received ? (received * 99) / 100 : 0;
    printf("summary sent %zu received %zu enhanced %zu passthrough %zu dropped %zu ring_dropped %llu "
           "latency_us_median %llu latency_us_p99 %llu fps %.1f size %ux%u\n",
           sent, received, enhanced, passthrough, sent - received, (unsigned long long)stats.frames_dropped,
           received ? (unsigned long long)latency[received / 2] : 0ull,
           received ? (unsigned long long)latency[p99 < received ? p99 : received - 1] : 0ull,
           seconds > 0 ? (double)received / seconds : 0.0, in.width, in.height);
    if (out) fclose(out);
    free(latency);
    free(back);
    free(frame);
    feed_close(&in);
    sb_channel_close(ch);
    return failed;
}
