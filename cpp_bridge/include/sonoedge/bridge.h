/*
 * sonoedge bridge: a C ABI for device software to stream frames through the sonoedge enhancer.
 *
 * A channel is one POSIX shared-memory object holding two single-producer single-consumer frame
 * rings: "in" (raw frames, written by the CLIENT, read by the SERVER) and "out" (enhanced frames,
 * written by the SERVER, read by the CLIENT). The client is the device software (acquisition,
 * display); the server is the enhancer (the `sonoedge serve` daemon or an in-process enhancer).
 *
 *   client: sb_channel_write(raw)  --> [ in ring ]  --> server: sb_channel_read
 *   client: sb_channel_read        <-- [ out ring ] <-- server: sb_channel_write(enhanced)
 *
 * Rings are lock-free (C++11 atomics, acquire/release, one sequence number per slot) and the
 * reader always gets the NEWEST frame: frames the writer published since the reader's previous
 * read, other than the newest, are skipped and counted as dropped. The writer never waits for the
 * reader except when the one slot it must write next is being copied out at that very moment.
 *
 * Liveness: each side writes its pid and a CLOCK_MONOTONIC heartbeat into the shared header (a
 * background thread every `heartbeat_ms`, and on every read/write). A side whose process has
 * exited, or whose heartbeat is older than `peer_timeout_ms`, is DEAD; a new process of the same
 * role attaches in its place and the other side carries on without restarting.
 *
 * Every function returns an sb_status; nothing aborts, nothing prints. Thread safety: one handle
 * per side, one thread writing and one thread reading per handle (the two rings are independent).
 */
#ifndef SONOEDGE_BRIDGE_H
#define SONOEDGE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the shared-memory layout; both sides must agree (SB_ERR_VERSION_MISMATCH). */
#define SB_LAYOUT_VERSION 1u

typedef enum sb_status {
    SB_OK = 0,
    SB_ERR_TIMEOUT = 1,            /* no new frame (or no free slot) within the timeout */
    SB_ERR_RING_FULL = 2,          /* the slot the next frame goes to is still being read */
    SB_ERR_FRAME_TOO_LARGE = 3,    /* stride * height exceeds the channel's slot_bytes */
    SB_ERR_BUFFER_TOO_SMALL = 4,   /* the caller's buffer cannot hold the frame; info is filled */
    SB_ERR_BAD_MAGIC = 5,          /* the shared object or a slot is not a sonoedge frame ring */
    SB_ERR_VERSION_MISMATCH = 6,   /* the peer was built with another SB_LAYOUT_VERSION */
    SB_ERR_GEOMETRY_MISMATCH = 7,  /* the channel exists with another slot_count / slot_bytes */
    SB_ERR_CORRUPT_HEADER = 8,     /* a slot header is inconsistent (size, stride, format) */
    SB_ERR_PEER_GONE = 9,          /* the other side's process died or stopped its heartbeat */
    SB_ERR_ROLE_TAKEN = 10,        /* a live process already holds this side of the channel */
    SB_ERR_INVALID_ARGUMENT = 11,  /* NULL pointer, bad name, bad format, zero size, ... */
    SB_ERR_NOT_FOUND = 12,         /* SB_OPEN_NO_CREATE and no channel of that name */
    SB_ERR_SYSTEM = 13,            /* shm_open / ftruncate / mmap failed; errno says why */
    SB_ERR_NO_MEMORY = 14,
    SB_ERR_PROTOCOL = 15,          /* the peer broke the ring protocol: a counter that cannot be right, the object shrunk */
    SB_ERR_PERMISSION = 16         /* the shared object belongs to another user or is open to group/others */
} sb_status;

typedef enum sb_role {
    SB_ROLE_CLIENT = 0, /* writes raw frames, reads enhanced frames (the device software) */
    SB_ROLE_SERVER = 1  /* reads raw frames, writes enhanced frames (the enhancer) */
} sb_role;

typedef enum sb_peer_state {
    SB_PEER_ABSENT = 0, /* never attached, or closed its handle cleanly */
    SB_PEER_ALIVE = 1,
    SB_PEER_DEAD = 2    /* attached, then its process died or its heartbeat went stale */
} sb_peer_state;

typedef enum sb_pixel_format {
    SB_FORMAT_GRAY8 = 1, /* 1 byte per pixel: B-mode */
    SB_FORMAT_RGB8 = 2,  /* 3 bytes per pixel, R G B */
    SB_FORMAT_BGR8 = 3   /* 3 bytes per pixel, B G R (OpenCV order) */
} sb_pixel_format;

/* Frame flags (bit set). */
#define SB_FLAG_ENHANCED 0x1u      /* the imaging region went through the model */
#define SB_FLAG_PASSTHROUGH 0x2u   /* the frame is the input, unenhanced (fail-safe or by choice) */
#define SB_FLAG_END_OF_STREAM 0x4u /* no pixels; the writer has no more frames */

/* Open flags. */
#define SB_OPEN_NO_CREATE 0x1u /* fail with SB_ERR_NOT_FOUND instead of creating the channel */

typedef struct sb_channel_config {
    uint32_t slot_count;      /* slots per ring, >= 2; 0: the existing channel's, or 8 */
    uint32_t peer_timeout_ms; /* a heartbeat older than this means the peer is dead; 0: 2000 */
    uint64_t slot_bytes;      /* pixel bytes per slot; 0: the existing channel's, or 1920x1080x3 */
    uint32_t heartbeat_ms;    /* background heartbeat period; 0: no thread, call sb_channel_heartbeat */
    uint32_t open_flags;      /* SB_OPEN_* */
} sb_channel_config;

typedef struct sb_frame_info {
    uint32_t width;         /* pixels */
    uint32_t height;        /* rows */
    uint32_t stride;        /* bytes per row, >= width * bytes per pixel */
    uint32_t format;        /* sb_pixel_format */
    uint64_t frame_id;      /* the caller's id, carried unchanged through the enhancer */
    uint64_t timestamp_ns;  /* capture time, CLOCK_MONOTONIC ns; carried unchanged */
    uint32_t flags;         /* SB_FLAG_* */
    uint32_t payload_bytes; /* read: stride * height; ignored on write */
} sb_frame_info;

typedef struct sb_stats {
    uint64_t frames_written;  /* by this side, on the ring it writes */
    uint64_t writes_refused;  /* SB_ERR_RING_FULL returned to this side */
    uint64_t frames_read;     /* by this side, on the ring it reads */
    uint64_t frames_dropped;  /* published on the ring this side reads and overwritten or skipped unread */
    uint32_t peer_generation; /* attaches of the other side so far (grows on every re-attach) */
    uint32_t slot_count;
    uint64_t slot_bytes;
} sb_stats;

typedef struct sb_channel sb_channel;

/* Defaults: every field 0 (the channel's existing geometry, or the defaults above), heartbeat 100 ms. */
void sb_channel_config_default(sb_channel_config *config);

/* Attach to channel `name` ([A-Za-z0-9._-], 1..200 chars) as `role`, creating it when absent
 * (unless SB_OPEN_NO_CREATE). Taking over a side whose process is dead is a re-attach. A channel
 * is created mode 0600; an existing one owned by another user, or with any group/other permission
 * bit, is refused (SB_ERR_PERMISSION), and so is one whose header disagrees with its layout or its
 * object's size (SB_ERR_CORRUPT_HEADER). The geometry is copied at attach and never re-read. */
sb_status sb_channel_open(const char *name, sb_role role, const sb_channel_config *config,
                          sb_channel **out);

/* Detach and free the handle. The shared object is removed when the other side is absent or dead. */
sb_status sb_channel_close(sb_channel *channel);

/* Remove a channel's shared object by name (for tooling and stale channels). */
sb_status sb_channel_unlink(const char *name);

/* Publish one frame on the ring this side writes. `pixels` holds info->stride * info->height
 * bytes (none for SB_FLAG_END_OF_STREAM). Waits at most timeout_ms (0: not at all, < 0: forever)
 * for the target slot when the reader is copying it, then returns SB_ERR_RING_FULL. */
sb_status sb_channel_write(sb_channel *channel, const sb_frame_info *info, const void *pixels,
                           int timeout_ms);

/* Copy the newest unread frame into `pixels` (capacity bytes) and its header into `info`.
 * Waits at most timeout_ms (0: poll, < 0: forever) for a frame: SB_ERR_TIMEOUT when none came,
 * whatever the writer puts in shared memory. A write counter that cannot be right (backwards,
 * ahead of its own slot, or a slot sequence that does not belong there) is SB_ERR_PROTOCOL, and
 * the reader takes the writer's counter from there on, so the ring heals when the writer goes on.
 * When the writer has died, the first call after its death returns SB_ERR_PEER_GONE at once;
 * later calls wait their timeout for a re-attached writer's frame and return SB_ERR_PEER_GONE
 * (not SB_ERR_TIMEOUT) while it stays dead. Frames it published before dying are still read.
 * Frames written while an earlier reader held this side (one that died or closed before we
 * attached) are stale and skipped as dropped; frames written before any reader attached are kept. */
sb_status sb_channel_read(sb_channel *channel, sb_frame_info *info, void *pixels, size_t capacity,
                          int timeout_ms);

/* Refresh this side's heartbeat (needed only with heartbeat_ms = 0). */
sb_status sb_channel_heartbeat(sb_channel *channel);

/* State of the other side; `generation` (may be NULL) counts its attaches. */
sb_peer_state sb_channel_peer(sb_channel *channel, uint32_t *generation);

sb_status sb_channel_stats(sb_channel *channel, sb_stats *out);

/* Bytes per pixel of a format, 0 when unknown. */
uint32_t sb_format_bytes_per_pixel(uint32_t format);

/* CLOCK_MONOTONIC in ns: the clock of sb_frame_info.timestamp_ns and the heartbeats. */
uint64_t sb_now_ns(void);

/* "SB_ERR_TIMEOUT: no new frame within the timeout", static storage. */
const char *sb_status_string(sb_status status);

#ifdef __cplusplus
}
#endif

#endif /* SONOEDGE_BRIDGE_H */
