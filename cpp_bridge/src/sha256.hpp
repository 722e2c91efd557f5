// SHA-256 (FIPS 180-4, section 6.2), so the in-process enhancer checks a bundle's bundle.sha256 and
// model file without a crypto library. Streaming: update() any number of times, then hex().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sb {

class Sha256 {
  public:
    Sha256();
    void update(const void *data, size_t bytes);
    std::string hex();  // the digest as 64 lower-case hex digits; finishes the hash (call once)

  private:
    void block(const uint8_t *p);  // one 64-byte block into state_

    uint32_t state_[8];
    uint8_t buffer_[64];
    size_t buffered_ = 0;
    uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const std::string &data);

// The sha256 of the file at `path` as hex, read in chunks; false when it cannot be read.
bool sha256_file(const std::string &path, std::string *hex);

}  // namespace sb
