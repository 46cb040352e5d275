// setMaxCertList(external, bytes): SSL_CTX_set_max_cert_list on the SSL_CTX* behind a Node
// SecureContext (`secureContext.context._external`). See README.md.
#include <node.h>
#include <openssl/ssl.h>

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

}  // namespace

NODE_MODULE_INIT(/* exports, module, context */) {
  NODE_SET_METHOD(exports, "setMaxCertList", SetMaxCertList);
}
