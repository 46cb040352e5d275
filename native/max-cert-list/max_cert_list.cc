// setMaxCertList(external, bytes): SSL_CTX_set_max_cert_list on the SSL_CTX* behind a Node
// SecureContext (`secureContext.context._external`). See README.md.
//
// recordVerifiedChains(external, capacity) / takeVerifiedChain(finished): the certificate path
// OpenSSL itself verified for a client, handed to JS without Node's per-certificate work
// (getPeerCertificate computes three fingerprints of every certificate, i.e. hashes an 8 MiB
// leaf three times; getPeerX509Certificate on Node 20 and 22 leaks the intermediates). An
// app verify callback on the SSL_CTX runs OpenSSL's own X509_verify_cert unchanged and, when it
// succeeded without a single error reported to the verify callback, keeps the verified chain
// (references, no copies) under the server's Finished message of that connection — a value JS
// reads with tlsSocket.getFinished() and that no client can choose (it is a MAC over a
// transcript holding our random and our key share). JS takes it once after the handshake;
// OpenSSL freeing the connection drops an entry never taken; at most `capacity` are held.
#include <node.h>
#include <node_buffer.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace {

void SetMaxCertList(const v8::FunctionCallbackInfo<v8::Value>& args) {
  v8::Isolate* isolate = args.GetIsolate();
  if (args.Length() != 2 || !args[0]->IsExternal() || !args[1]->IsNumber()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "setMaxCertList(external, bytes)")));
    return;
  }
  SSL_CTX* ctx = static_cast<SSL_CTX*>(args[0].As<v8::External>()->Value());
  double n = args[1].As<v8::Number>()->Value();
  if (ctx == nullptr || !(n >= 1 && n <= 4294967295.0)) {
    isolate->ThrowException(v8::Exception::RangeError(
        v8::String::NewFromUtf8Literal(isolate, "no SSL_CTX, or bytes out of range")));
    return;
  }
  SSL_CTX_set_max_cert_list(ctx, static_cast<long>(n));
  // what OpenSSL now holds, read back
  args.GetReturnValue().Set(static_cast<double>(SSL_CTX_get_max_cert_list(ctx)));
}

// --- verified chains ---

std::mutex mu;
std::map<std::string, STACK_OF(X509)*> chains;  // by the server's Finished
std::deque<std::string> order;                   // insertion order, for the bound
size_t capacity = 0;
int exIndex = -1;  // SSL ex_data: a heap std::string, the connection's key

void FreeChain(STACK_OF(X509)* c) { sk_X509_pop_free(c, X509_free); }

void Erase(const std::string& key) {  // mu held
  auto it = chains.find(key);
  if (it == chains.end()) return;
  FreeChain(it->second);
  chains.erase(it);
}

// OpenSSL frees a connection: its entry, if still there, goes too.
void FreeKey(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  auto* key = static_cast<std::string*>(ptr);
  if (key == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(mu);
    Erase(*key);
  }
  delete key;
}

// Whether the verify callback saw an error during this X509_verify_cert (Node's callback
// returns 1 for every error, so OpenSSL goes on and the result is only the last error).
thread_local int (*watchedCallback)(int, X509_STORE_CTX*) = nullptr;
thread_local bool sawError = false;

int Watch(int ok, X509_STORE_CTX* x) {
  if (!ok) sawError = true;
  return watchedCallback != nullptr ? watchedCallback(ok, x) : ok;
}

int VerifyAndRecord(X509_STORE_CTX* x, void*) {
  int (*const outer)(int, X509_STORE_CTX*) = watchedCallback;
  const bool outerSaw = sawError;
  watchedCallback = X509_STORE_CTX_get_verify_cb(x);
  sawError = false;
  X509_STORE_CTX_set_verify_cb(x, Watch);
  const int ok = X509_verify_cert(x);  // exactly what OpenSSL does without this callback
  X509_STORE_CTX_set_verify_cb(x, watchedCallback);
  const bool clean = ok > 0 && !sawError && X509_STORE_CTX_get_error(x) == X509_V_OK;
  watchedCallback = outer;
  sawError = outerSaw;

  SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr || !SSL_is_server(ssl)) return ok;
  unsigned char fin[EVP_MAX_MD_SIZE];
  const size_t n = SSL_get_finished(ssl, fin, sizeof fin);
  if (n == 0 || n > sizeof fin) return ok;
  std::string key(reinterpret_cast<char*>(fin), n);
  std::lock_guard<std::mutex> lock(mu);
  if (SSL_get_ex_data(ssl, exIndex) != nullptr || chains.count(key) != 0) {
    // verified twice, or a key seen before: nothing is handed out for it
    Erase(key);
    return ok;
  }
  if (!clean) return ok;
  STACK_OF(X509)* chain = X509_STORE_CTX_get1_chain(x);
  if (chain == nullptr) return ok;
  auto* owned = new std::string(key);
  if (!SSL_set_ex_data(ssl, exIndex, owned)) {
    delete owned;
    FreeChain(chain);
    return ok;
  }
  chains.emplace(key, chain);
  order.push_back(key);
  while (chains.size() > capacity && !order.empty()) {
    Erase(order.front());
    order.pop_front();
  }
  // (keys already gone are dropped from the front as they come up)
  while (order.size() > 2 * capacity + 16 && !order.empty()) order.pop_front();
  return ok;
}

void RecordVerifiedChains(const v8::FunctionCallbackInfo<v8::Value>& args) {
  v8::Isolate* isolate = args.GetIsolate();
  if (args.Length() != 2 || !args[0]->IsExternal() || !args[1]->IsNumber()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "recordVerifiedChains(external, capacity)")));
    return;
  }
  SSL_CTX* ctx = static_cast<SSL_CTX*>(args[0].As<v8::External>()->Value());
  double n = args[1].As<v8::Number>()->Value();
  if (ctx == nullptr || !(n >= 1 && n <= 1e6)) {
    isolate->ThrowException(v8::Exception::RangeError(
        v8::String::NewFromUtf8Literal(isolate, "no SSL_CTX, or capacity out of range")));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    if (exIndex < 0) exIndex = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeKey);
    if (static_cast<size_t>(n) > capacity) capacity = static_cast<size_t>(n);
  }
  if (exIndex < 0) {
    isolate->ThrowException(v8::Exception::Error(
        v8::String::NewFromUtf8Literal(isolate, "SSL_get_ex_new_index failed")));
    return;
  }
  SSL_CTX_set_cert_verify_callback(ctx, VerifyAndRecord, nullptr);
}

// takeVerifiedChain(finished): [leaf DER, issuer DER, ..., trust anchor DER], or undefined.
void TakeVerifiedChain(const v8::FunctionCallbackInfo<v8::Value>& args) {
  v8::Isolate* isolate = args.GetIsolate();
  if (args.Length() != 1 || !node::Buffer::HasInstance(args[0])) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "takeVerifiedChain(finished)")));
    return;
  }
  std::string key(node::Buffer::Data(args[0]), node::Buffer::Length(args[0]));
  STACK_OF(X509)* chain = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = chains.find(key);
    if (it == chains.end()) return;
    chain = it->second;
    chains.erase(it);
  }
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  const int count = sk_X509_num(chain);
  v8::Local<v8::Array> out = v8::Array::New(isolate, count);
  for (int i = 0; i < count; i++) {
    X509* c = sk_X509_value(chain, i);
    const int len = i2d_X509(c, nullptr);
    v8::Local<v8::Object> buf;
    if (len <= 0 || !node::Buffer::New(isolate, static_cast<size_t>(len)).ToLocal(&buf)) {
      FreeChain(chain);
      return;
    }
    unsigned char* p = reinterpret_cast<unsigned char*>(node::Buffer::Data(buf));
    // an unmodified certificate is written from the bytes it was read from (one copy)
    if (i2d_X509(c, &p) != len || out->Set(context, i, buf).IsNothing()) {
      FreeChain(chain);
      return;
    }
  }
  FreeChain(chain);
  args.GetReturnValue().Set(out);
}

}  // namespace

NODE_MODULE_INIT(/* exports, module, context */) {
  NODE_SET_METHOD(exports, "setMaxCertList", SetMaxCertList);
  NODE_SET_METHOD(exports, "recordVerifiedChains", RecordVerifiedChains);
  NODE_SET_METHOD(exports, "takeVerifiedChain", TakeVerifiedChain);
}
