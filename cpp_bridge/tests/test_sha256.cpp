// SHA-256 against the FIPS 180-4 example vectors (NIST CSVS "SHA256ShortMsg" style), every padding
// boundary around 55/56/64 bytes, chunked updates, and the file reader.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "../src/sha256.hpp"
#include "check.hpp"

namespace {

void known_vectors() {
    CHECK(sb::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sb::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sb::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sb::sha256_hex(std::string(1000000, 'a')) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

void every_length_up_to_200() {
    // sha256 of the concatenated hex digests of the messages (i * 7 + 3) & 255, i < n, n = 0..199,
    // computed with Python's hashlib: covers one, two and four blocks and every padding boundary.
    std::string all;
    for (int n = 0; n < 200; ++n) {
        std::string message;
        for (int i = 0; i < n; ++i) message.push_back(static_cast<char>((i * 7 + 3) & 255));
        all += sb::sha256_hex(message);
    }
    CHECK(sb::sha256_hex(all) == "466ee381bbc4a6de34133ad71e2d19bd7ac1efe7fbd78829b39564fb7a8e7d20");
}

void chunked_updates_and_files_agree() {
    std::string data;
    for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 31));
    sb::Sha256 hash;
    for (size_t at = 0, step = 1; at < data.size(); at += step, step = step * 3 % 997 + 1)
        hash.update(data.data() + at, std::min(step, data.size() - at));
    const std::string whole = sb::sha256_hex(data);
    CHECK(hash.hex() == whole);
    char path[] = "/tmp/sbtest-sha-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    std::ofstream(path, std::ios::binary) << data;
    std::string from_file;
    CHECK(sb::sha256_file(path, &from_file) && from_file == whole);
    unlink(path);
    CHECK(!sb::sha256_file(path, &from_file));
}

}  // namespace

int main() {
    RUN(known_vectors);
    RUN(every_length_up_to_200);
    RUN(chunked_updates_and_files_agree);
    return check::failures() == 0 ? 0 : 1;
}
