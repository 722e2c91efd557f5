// A small strict JSON reader (RFC 8259 values; numbers as double) and the bundle manifest fields the
// in-process enhancer needs, read only after bundle.sha256 vouches for manifest.json and the model
// file matches the manifest's sha256. No exceptions escape; every failure is a sentence in `error`.
#include "manifest.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sha256.hpp"

namespace sb {

namespace {

constexpr int kMaxDepth = 64;  // manifests nest 4 deep; this only stops a hostile file
// runtime/bundle/manifest.py SCHEMA_VERSION: 2 added bundle.sha256, the hash over manifest.json.
constexpr int kSchemaVersion = 2;
const char *const kChecksums = "bundle.sha256";

class Parser {
  public:
    explicit Parser(const std::string &text) : s_(text) {}

    bool parse(Json *out, std::string *error) {
        skip();
        if (!value(out, 0)) {
            *error = "malformed JSON at byte " + std::to_string(pos_) + ": " + why_;
            return false;
        }
        skip();
        if (pos_ != s_.size()) {
            *error = "malformed JSON at byte " + std::to_string(pos_) + ": trailing characters";
            return false;
        }
        return true;
    }

  private:
    bool fail(const char *why) {
        why_ = why;
        return false;
    }
    void skip() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
    }
    bool literal(const char *word) {
        size_t n = std::strlen(word);
        if (s_.compare(pos_, n, word) != 0) return fail("expected a value");
        pos_ += n;
        return true;
    }

    bool value(Json *out, int depth) {
        if (depth > kMaxDepth) return fail("nested too deeply");
        if (pos_ >= s_.size()) return fail("unexpected end of input");
        char c = s_[pos_];
        if (c == '{') return object(out, depth);
        if (c == '[') return array(out, depth);
        if (c == '"') {
            out->kind = Json::String;
            return string(&out->string);
        }
        if (c == 't' || c == 'f') {
            out->kind = Json::Bool;
            out->boolean = c == 't';
            return literal(c == 't' ? "true" : "false");
        }
        if (c == 'n') {
            out->kind = Json::Null;
            return literal("null");
        }
        return number(out);
    }

    bool number(Json *out) {
        size_t start = pos_;
        if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
        if (pos_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_]))) return fail("expected a value");
        while (pos_ < s_.size() && std::strchr("0123456789+-.eE", s_[pos_]) != nullptr) ++pos_;
        std::string text = s_.substr(start, pos_ - start);
        char *end = nullptr;
        out->kind = Json::Number;
        out->number = std::strtod(text.c_str(), &end);
        if (end != text.c_str() + text.size() || !std::isfinite(out->number)) return fail("malformed number");
        return true;
    }

    static void utf8(uint32_t cp, std::string *out) {
        if (cp < 0x80) {
            out->push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }

    bool hex4(uint32_t *cp) {
        if (pos_ + 4 > s_.size()) return fail("truncated \\u escape");
        *cp = 0;
        for (int i = 0; i < 4; ++i) {
            char c = s_[pos_++];
            int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                       : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
            if (digit < 0) return fail("bad \\u escape");
            *cp = *cp * 16 + static_cast<uint32_t>(digit);
        }
        return true;
    }

    bool string(std::string *out) {
        ++pos_;  // opening quote
        while (pos_ < s_.size()) {
            char c = s_[pos_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return fail("control character in a string");
            if (c != '\\') {
                out->push_back(c);
                continue;
            }
            if (pos_ >= s_.size()) break;
            char e = s_[pos_++];
            switch (e) {
                case '"': case '\\': case '/': out->push_back(e); break;
                case 'b': out->push_back('\b'); break;
                case 'f': out->push_back('\f'); break;
                case 'n': out->push_back('\n'); break;
                case 'r': out->push_back('\r'); break;
                case 't': out->push_back('\t'); break;
                case 'u': {
                    uint32_t cp = 0;
                    if (!hex4(&cp)) return false;
                    if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
                        uint32_t low = 0;
                        if (s_.compare(pos_, 2, "\\u") != 0) return fail("unpaired surrogate");
                        pos_ += 2;
                        if (!hex4(&low) || low < 0xDC00 || low >= 0xE000) return fail("unpaired surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    }
                    utf8(cp, out);
                    break;
                }
                default: return fail("bad escape");
            }
        }
        return fail("unterminated string");
    }

    bool array(Json *out, int depth) {
        out->kind = Json::Array;
        ++pos_;
        skip();
        if (pos_ < s_.size() && s_[pos_] == ']') {
            ++pos_;
            return true;
        }
        for (;;) {
            skip();
            out->array.emplace_back();
            if (!value(&out->array.back(), depth + 1)) return false;
            skip();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == ']') {
                ++pos_;
                return true;
            }
            return fail("expected ',' or ']'");
        }
    }

    bool object(Json *out, int depth) {
        out->kind = Json::Object;
        ++pos_;
        skip();
        if (pos_ < s_.size() && s_[pos_] == '}') {
            ++pos_;
            return true;
        }
        for (;;) {
            skip();
            if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a key");
            std::string key;
            if (!string(&key)) return false;
            skip();
            if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
            ++pos_;
            skip();
            Json item;
            if (!value(&item, depth + 1)) return false;
            out->object[key] = std::move(item);
            skip();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == '}') {
                ++pos_;
                return true;
            }
            return fail("expected ',' or '}'");
        }
    }

    const std::string &s_;
    size_t pos_ = 0;
    const char *why_ = "";
};

const Json *path(const Json &root, std::initializer_list<const char *> keys) {
    const Json *node = &root;
    for (const char *key : keys) {
        node = node->get(key);
        if (node == nullptr) return nullptr;
    }
    return node;
}

bool get_string(const Json &root, std::initializer_list<const char *> keys, std::string *out) {
    const Json *node = path(root, keys);
    if (node == nullptr || node->kind != Json::String) return false;
    *out = node->string;
    return true;
}

bool get_int(const Json &root, std::initializer_list<const char *> keys, int *out) {
    const Json *node = path(root, keys);
    if (node == nullptr || node->kind != Json::Number || node->number != std::floor(node->number) ||
        node->number < 0 || node->number > 1e9)
        return false;
    *out = static_cast<int>(node->number);
    return true;
}

bool get_hw(const Json *node, int out[2]) {
    if (node == nullptr || node->kind != Json::Array || node->array.size() != 2) return false;
    for (int i = 0; i < 2; ++i) {
        const Json &v = node->array[i];
        if (v.kind != Json::Number || v.number < 1 || v.number > 1e6 || v.number != std::floor(v.number)) return false;
        out[i] = static_cast<int>(v.number);
    }
    return true;
}

// A bundle-relative POSIX path that stays inside the bundle: not absolute, no empty, '.' or '..'
// component, no backslash or control character (the rules of runtime/bundle/manifest.py).
bool safe_relative(const std::string &p) {
    if (p.empty() || p[0] == '/') return false;
    for (char c : p)
        if (c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
    size_t start = 0;
    while (start <= p.size()) {
        size_t end = p.find('/', start);
        if (end == std::string::npos) end = p.size();
        std::string part = p.substr(start, end - start);
        if (part.empty() || part == "." || part == "..") return false;
        start = end + 1;
    }
    return true;
}

bool is_hex64(const std::string &s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string short_hex(const std::string &hex) { return hex.substr(0, 12) + "..."; }

}  // namespace

bool read_checksums(const std::string &bundle_dir, std::map<std::string, std::string> *sums, std::string *error) {
    const std::string file = bundle_dir + "/" + kChecksums;
    std::string text;
    if (!read_file(file, &text)) {
        *error = file + " cannot be read; a schema-2 bundle lists every file's sha256 there, re-export the bundle "
                        "with `sonoedge export`";
        return false;
    }
    sums->clear();
    std::istringstream lines(text);
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
        // sha256sum format: 64 hex digits, a space, ' ' (text) or '*' (binary), the path
        const bool shaped = line.size() > 66 && line[64] == ' ' && (line[65] == ' ' || line[65] == '*');
        const std::string digest = line.substr(0, 64), rel = shaped ? line.substr(66) : std::string();
        if (!shaped || !is_hex64(digest) || !safe_relative(rel) || sums->count(rel) != 0) {
            *error = file + " line " + std::to_string(number) + " is not '<sha256>  <relative path>' of a file listed "
                     "once; the bundle was modified or corrupted";
            return false;
        }
        (*sums)[rel] = digest;
    }
    return true;
}

const Json *Json::get(const std::string &key) const {
    if (kind != Object) return nullptr;
    auto it = object.find(key);
    return it == object.end() ? nullptr : &it->second;
}

bool parse_json(const std::string &text, Json *out, std::string *error) {
    *out = Json();
    return Parser(text).parse(out, error);
}

bool read_file(const std::string &path, std::string *out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream buffer;
    buffer << in.rdbuf();
    *out = buffer.str();
    return static_cast<bool>(in) || in.eof();
}

bool load_bundle_model(const std::string &bundle_dir, const std::string &precision, BundleModel *out,
                       std::string *error) {
    const std::string file = bundle_dir + "/manifest.json";
    std::string text, why;
    std::map<std::string, std::string> sums;
    Json m;
    if (!read_file(file, &text)) {
        *error = file + " cannot be read; pass a bundle directory made by `sonoedge export`";
        return false;
    }
    if (!read_checksums(bundle_dir, &sums, error)) return false;
    const std::string manifest_sha = sha256_hex(text);  // the bytes parsed below are the bytes hashed here
    if (sums.count("manifest.json") == 0 || sums["manifest.json"] != manifest_sha) {
        *error = file + " does not match " + kChecksums + " (expected " +
                 short_hex(sums.count("manifest.json") ? sums["manifest.json"] : std::string("none")) + ", found " +
                 short_hex(manifest_sha) + "); the bundle was modified or corrupted";
        return false;
    }
    if (!parse_json(text, &m, &why)) {
        *error = file + " is not valid JSON (" + why + ")";
        return false;
    }
    int schema = 0;
    if (!get_int(m, {"schema_version"}, &schema) || schema != kSchemaVersion) {
        const Json *v = m.get("schema_version");
        const std::string shown = v != nullptr && v->kind == Json::Number ? std::to_string(static_cast<long long>(v->number))
                                                                          : std::string("(none)");
        *error = file + ": schema_version " + shown + " is not supported by this enhancer (reads " +
                 std::to_string(kSchemaVersion) + "); re-export the bundle with `sonoedge export`";
        return false;
    }
    BundleModel b;
    std::string normalisation;
    if (!get_string(m, {"model", "task"}, &b.task) || !get_string(m, {"model", "input_name"}, &b.input_name) ||
        !get_string(m, {"model", "output_name"}, &b.output_name) || !get_int(m, {"model", "stride"}, &b.stride) ||
        b.stride < 1) {
        *error = file + " lacks model.task, model.input_name, model.output_name or a positive model.stride";
        return false;
    }
    get_string(m, {"model", "name"}, &b.name);
    get_int(m, {"model", "scale"}, &b.scale);
    get_int(m, {"model", "channels"}, &b.channels);
    get_hw(path(m, {"model", "size_range", "min"}), b.min_hw);
    get_hw(path(m, {"model", "size_range", "max"}), b.max_hw);
    if (b.task != "enhance" || b.scale != 1 || b.channels != 1) {
        *error = file + ": the in-process enhancer runs grey enhancement models (task enhance, scale 1, 1 channel), "
                        "this bundle is task " + b.task + " scale " + std::to_string(b.scale) + "; use `sonoedge serve`";
        return false;
    }
    if (get_string(m, {"preprocess", "normalisation"}, &normalisation) && normalisation != "minus1_1") {
        *error = file + ": preprocess.normalisation '" + normalisation + "' is not minus1_1, the only one supported";
        return false;
    }
    const Json *entry = path(m, {"precisions", precision.c_str()});
    if (entry == nullptr || !get_string(*entry, {"file"}, &b.model_file)) {
        *error = file + " has no precision '" + precision + "'; export the bundle with it";
        return false;
    }
    const Json *passed = entry->get("passed");
    if (passed != nullptr && passed->kind == Json::Bool && !passed->boolean) {
        *error = file + ": precision '" + precision + "' failed its accuracy gate at export; refusing to run it";
        return false;
    }
    if (!safe_relative(b.model_file)) {
        *error = file + ": precisions." + precision + ".file '" + b.model_file + "' is not a relative path inside the bundle";
        return false;
    }
    const Json *files = m.get("files");
    if (files == nullptr || !get_string(*files, {b.model_file.c_str()}, &b.model_sha256) || !is_hex64(b.model_sha256)) {
        *error = file + " lists no sha256 for " + b.model_file;
        return false;
    }
    if (sums.count(b.model_file) == 0 || sums[b.model_file] != b.model_sha256) {
        *error = std::string(kChecksums) + " and " + file + " disagree on " + b.model_file +
                 "; the bundle was modified or corrupted";
        return false;
    }
    std::string actual;
    const std::string model_path = bundle_dir + "/" + b.model_file;
    if (!sha256_file(model_path, &actual) || actual != b.model_sha256) {
        *error = model_path + " does not match its manifest sha256 (expected " + short_hex(b.model_sha256) + ", found " +
                 (actual.empty() ? std::string("unreadable") : short_hex(actual)) + "); the bundle was modified or corrupted";
        return false;
    }
    b.precision = precision;
    *out = b;
    return true;
}

bool check_engine_sidecar(const std::string &sidecar_path, const BundleModel &model, std::string *error) {
    std::string text, why, sha, precision;
    Json s;
    if (!read_file(sidecar_path, &text) || !parse_json(text, &s, &why)) {
        *error = sidecar_path + " cannot be read as an engine sidecar (" + (why.empty() ? "unreadable" : why) + ")";
        return false;
    }
    if (!get_string(s, {"key", "model_sha256"}, &sha) || !get_string(s, {"key", "precision"}, &precision)) {
        *error = sidecar_path + " has no key.model_sha256 / key.precision";
        return false;
    }
    if (sha != model.model_sha256 || precision != model.precision) {
        *error = "engine " + sidecar_path + " was built from another model or precision (" + precision + ", " +
                 sha.substr(0, 12) + ") than the bundle's " + model.precision + " " + model.model_file + " (" +
                 model.model_sha256.substr(0, 12) + "); rebuild it with `sonoedge build-engine`";
        return false;
    }
    return true;
}

}  // namespace sb
