// The GPU-free parts of the in-process enhancer: manifest and sidecar reading, and the pre/post-
// processing that must match runtime/frames.py bit for bit (so only the TensorRT calls are untested
// where there is no GPU).
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <vector>

#include "../src/frame_math.hpp"
#include "../src/manifest.hpp"
#include "../src/sha256.hpp"
#include "check.hpp"

namespace {

// MODEL_SHA and INT8_SHA are replaced by the sha256 of kModel and kInt8 (write_bundle).
const char *kModel = "an fp32 model's bytes";
const char *kInt8 = "an int8 model's bytes";
const char *kManifest = R"({
  "schema_version": 2,
  "model": {"name": "tiny \u00e9 \"q\"", "task": "enhance", "scale": 1, "channels": 1, "stride": 4,
            "input_name": "input", "output_name": "output", "dynamic_axes": ["H", "W"],
            "size_range": {"min": [16, 16], "opt": [256, 256], "max": [1024, 2048]}},
  "preprocess": {"normalisation": "minus1_1", "pad": "reflect", "grey": true, "region": "auto"},
  "precisions": {"fp32": {"file": "model.onnx", "passed": true, "results": {"psnr": 41.5e0}},
                 "int8": {"file": "model.int8.qdq.onnx", "passed": false}},
  "files": {"model.onnx": "MODEL_SHA", "model.int8.qdq.onnx": "INT8_SHA"}
})";

std::string temp_dir() {
    char path[] = "/tmp/sbtest-bundle-XXXXXX";
    return mkdtemp(path) ? std::string(path) : std::string();
}

void write(const std::string &path, const std::string &text) { std::ofstream(path, std::ios::binary) << text; }

std::string replaced(std::string text, const std::string &from, const std::string &to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

// A bundle as export writes it: the model files, manifest.json (with their real sha256) and
// bundle.sha256 over all of them; `manifest` edits the manifest text before it is hashed.
std::string write_bundle(const std::string &dir, const std::string &manifest = kManifest) {
    write(dir + "/model.onnx", kModel);
    write(dir + "/model.int8.qdq.onnx", kInt8);
    const std::string text = replaced(replaced(manifest, "MODEL_SHA", sb::sha256_hex(kModel)), "INT8_SHA",
                                      sb::sha256_hex(kInt8));
    write(dir + "/manifest.json", text);
    write(dir + "/bundle.sha256", sb::sha256_hex(text) + "  manifest.json\n" + sb::sha256_hex(kInt8) +
                                      "  model.int8.qdq.onnx\n" + sb::sha256_hex(kModel) + "  model.onnx\n");
    return text;
}

void json_reader_is_strict_and_complete() {
    sb::Json j;
    std::string why;
    CHECK(sb::parse_json(kManifest, &j, &why));
    CHECK(j.get("model")->get("name")->string == "tiny \xc3\xa9 \"q\"");
    CHECK(j.get("precisions")->get("fp32")->get("results")->get("psnr")->number == 41.5);
    CHECK(sb::parse_json(R"(["\ud83d\ude00", -0.5e-3, null, false, {}])", &j, &why));
    CHECK(j.array.size() == 5 && j.array[0].string == "\xf0\x9f\x98\x80" && j.array[1].number == -0.0005);
    for (const char *bad : {"", "{", "{\"a\" 1}", "[1,]", "[1 2]", "\"\\x\"", "tru", "01x", "{\"a\":1} x",
                            "\"\\ud83d\"", "[1e999]", "\"a\nb\""}) {
        CHECK(!sb::parse_json(bad, &j, &why));
        CHECK(why.find("malformed JSON at byte") == 0);
    }
    std::string deep(100, '[');
    CHECK(!sb::parse_json(deep + std::string(100, ']'), &j, &why));
}

void manifest_fields_and_refusals() {
    std::string dir = temp_dir();
    CHECK(!dir.empty());
    write_bundle(dir);
    sb::BundleModel m;
    std::string why;
    CHECK(sb::load_bundle_model(dir, "fp32", &m, &why));
    CHECK(m.stride == 4 && m.input_name == "input" && m.output_name == "output" && m.model_file == "model.onnx");
    CHECK(m.model_sha256 == sb::sha256_hex(kModel) && m.min_hw[0] == 16 && m.max_hw[1] == 2048);
    CHECK(!sb::load_bundle_model(dir, "fp16", &m, &why) && why.find("no precision 'fp16'") != std::string::npos);
    CHECK(!sb::load_bundle_model(dir, "int8", &m, &why) && why.find("failed its accuracy gate") != std::string::npos);

    std::string sr = kManifest;
    sr.replace(sr.find("\"enhance\""), 9, "\"sr\"");
    write_bundle(dir, sr);
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("use `sonoedge serve`") != std::string::npos);
    write_bundle(dir, "{\"schema_version\": 1}");
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("schema_version 1 is not supported") != std::string::npos);
    write_bundle(dir, replaced(kManifest, "\"schema_version\": 2", "\"schema_version\": 7"));
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("schema_version 7 is not supported by this "
                                                                    "enhancer (reads 2)") != std::string::npos);
    write_bundle(dir, "{not json");
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("is not valid JSON") != std::string::npos);
    write_bundle(dir, replaced(kManifest, "\"model.onnx\"", "\"../model.onnx\""));
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("not a relative path inside") != std::string::npos);
    unlink((dir + "/manifest.json").c_str());
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("cannot be read") != std::string::npos);

    // integrity: an edited manifest (one byte), an edited model file, a missing or malformed bundle.sha256
    std::string text = write_bundle(dir);
    write(dir + "/manifest.json", replaced(text, "\"passed\": false", "\"passed\": true "));
    CHECK(!sb::load_bundle_model(dir, "int8", &m, &why) && why.find("manifest.json does not match bundle.sha256") != std::string::npos);
    write(dir + "/manifest.json", text + " ");
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("modified or corrupted") != std::string::npos);
    write_bundle(dir);
    write(dir + "/model.onnx", std::string(kModel) + "!");
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("model.onnx does not match its manifest sha256") != std::string::npos);
    write_bundle(dir);
    unlink((dir + "/bundle.sha256").c_str());
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("bundle.sha256 cannot be read") != std::string::npos);
    write(dir + "/bundle.sha256", sb::sha256_hex(text) + "  ../manifest.json\n");
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("line 1 is not") != std::string::npos);
    write(dir + "/bundle.sha256", sb::sha256_hex(text) + "  manifest.json\n");  // the model file unlisted
    CHECK(!sb::load_bundle_model(dir, "fp32", &m, &why) && why.find("disagree on model.onnx") != std::string::npos);

    write_bundle(dir);
    CHECK(sb::load_bundle_model(dir, "fp32", &m, &why));
    write(dir + "/e.json", R"({"key": {"model_sha256": ")" + sb::sha256_hex(kModel) +
                               R"(", "precision": "fp32"}, "plan_sha256": "x"})");
    CHECK(sb::check_engine_sidecar(dir + "/e.json", m, &why));
    write(dir + "/e.json", R"({"key": {"model_sha256": "ffff", "precision": "fp32"}})");
    CHECK(!sb::check_engine_sidecar(dir + "/e.json", m, &why) && why.find("another model") != std::string::npos);
    for (const char *name : {"e.json", "manifest.json", "bundle.sha256", "model.onnx", "model.int8.qdq.onnx"})
        unlink((dir + "/" + name).c_str());
    rmdir(dir.c_str());
}

void reflect_padding_matches_numpy() {
    // numpy.pad([0, 1, 2], (0, 5), mode="reflect") == [0, 1, 2, 1, 0, 1, 2, 1]
    const size_t want[] = {0, 1, 2, 1, 0, 1, 2, 1};
    for (size_t i = 0; i < 8; ++i) CHECK(sb::reflect_index(i, 3) == want[i]);
    CHECK(sb::reflect_index(5, 1) == 0);
    const uint8_t img[3 * 5] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140};
    std::vector<float> x;
    uint32_t hp = 0, wp = 0;
    CHECK(sb::normalise_pad(img, 5, 3, 5, 4, &x, &hp, &wp));
    CHECK(hp == 4 && wp == 8);
    // row 3 reflects row 1; columns 5, 6, 7 reflect columns 3, 2, 1
    CHECK(x[3 * 8 + 0] == 50 / 127.5f - 1.0f && x[0 * 8 + 5] == 30 / 127.5f - 1.0f && x[2 * 8 + 7] == 110 / 127.5f - 1.0f);
    uint8_t back[3 * 5] = {};
    CHECK(sb::denormalise_crop(x.data(), wp, 3, 5, back, 5));
    for (int i = 0; i < 15; ++i) CHECK(back[i] == img[i]);
    CHECK(!sb::normalise_pad(img, 5, 0, 5, 4, &x, &hp, &wp));
}

void denormalise_rounds_like_numpy_and_refuses_nan() {
    for (int v = 0; v < 256; ++v) {  // every grey level survives the round trip exactly
        uint8_t px = static_cast<uint8_t>(v), out = 0;
        std::vector<float> x;
        uint32_t hp, wp;
        sb::normalise_pad(&px, 1, 1, 1, 1, &x, &hp, &wp);
        CHECK(sb::denormalise_crop(x.data(), 1, 1, 1, &out, 1) && out == px);
    }
    // (y + 1) * 127.5 = 0.5 -> 0 and 2.5 -> 2 (half to even, numpy.rint); beyond [-1, 1] clips
    const float y[4] = {0.5f / 127.5f - 1.0f, 2.5f / 127.5f - 1.0f, -3.0f, 7.0f};
    uint8_t out[4] = {9, 9, 9, 9};
    CHECK(sb::denormalise_crop(y, 4, 1, 4, out, 4));
    CHECK(out[0] == 0 && out[1] == 2 && out[2] == 0 && out[3] == 255);
    const float nan[2] = {0.0f, std::numeric_limits<float>::quiet_NaN()};
    uint8_t keep[2] = {7, 7};
    CHECK(!sb::denormalise_crop(nan, 2, 1, 2, keep, 2) && keep[0] == 7 && keep[1] == 7);
}

void half_precision_conversion_is_exact_where_it_can_be() {
    CHECK(sb::float_to_half(1.0f) == 0x3C00 && sb::float_to_half(-2.0f) == 0xC000);
    CHECK(sb::float_to_half(65504.0f) == 0x7BFF && sb::float_to_half(1e6f) == 0x7C00);
    CHECK(sb::float_to_half(std::ldexp(1.0f, -24)) == 0x0001 && sb::float_to_half(1e-9f) == 0x0000);
    CHECK(sb::float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // a tie rounds to even
    int mismatches = 0;
    for (uint32_t bits = 0; bits < 0x10000; ++bits) {
        float f = sb::half_to_float(static_cast<uint16_t>(bits));
        if (std::isnan(f)) continue;
        if (sb::float_to_half(f) != bits) ++mismatches;
    }
    CHECK(mismatches == 0);
    CHECK(std::isnan(sb::half_to_float(sb::float_to_half(std::nanf("")))));
}

}  // namespace

int main() {
    RUN(json_reader_is_strict_and_complete);
    RUN(manifest_fields_and_refusals);
    RUN(reflect_padding_matches_numpy);
    RUN(denormalise_rounds_like_numpy_and_refuses_nan);
    RUN(half_precision_conversion_is_exact_where_it_can_be);
    return check::failures() == 0 ? 0 : 1;
}
