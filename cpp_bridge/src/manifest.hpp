// What the in-process enhancer needs from a bundle's manifest.json (schema 2, the dataclasses of
// runtime/bundle/manifest.py; manifest.json is checked against bundle.sha256 before it is parsed)
// and from an engine cache sidecar (runtime/backends/tensorrt/cache.py), with a small JSON reader.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sb {

// A parsed JSON value (objects keep their keys sorted; duplicate keys: the last wins).
struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<Json> array;
    std::map<std::string, Json> object;

    const Json *get(const std::string &key) const;  // nullptr when absent or not an object
};

// Parse `text`; false with `error` set (byte offset and what was expected) on malformed input.
bool parse_json(const std::string &text, Json *out, std::string *error);

struct BundleModel {
    std::string name, task, input_name, output_name;
    int scale = 1, channels = 1, stride = 1;
    int min_hw[2] = {1, 1}, max_hw[2] = {1 << 30, 1 << 30};  // size_range, when the manifest has one
    std::string precision, model_file, model_sha256;          // the precision this enhancer runs
};

// Read `bundle_dir`/manifest.json for `precision` (fp32 | fp16 | int8) once `bundle_dir`/bundle.sha256
// vouches for it, and check the precision's model file against the manifest's sha256. False with a
// one-sentence `error` naming the file and the problem (missing, modified, malformed, another
// schema_version, unsupported task or normalisation, precision absent or failed its gate).
bool load_bundle_model(const std::string &bundle_dir, const std::string &precision, BundleModel *out,
                       std::string *error);

// Check an engine cache sidecar: its key must name this precision and the sha256 of this bundle's
// model file, else the engine was built from another model and is refused.
bool check_engine_sidecar(const std::string &sidecar_path, const BundleModel &model, std::string *error);

bool read_file(const std::string &path, std::string *out);

// `bundle_dir`/bundle.sha256 (sha256sum format) as {relative path: sha256 hex}; false with `error`
// naming the file and line when it is missing or a line is malformed.
bool read_checksums(const std::string &bundle_dir, std::map<std::string, std::string> *sums, std::string *error);

}  // namespace sb
