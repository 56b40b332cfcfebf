// addon.cuda.nccl: collectives across processes on device buffers (kernels/nccl.h). Arguments are
// checked here, each error naming the argument; NCCL's own failures (missing library, a rank that
// died, a timeout) come back as a JS Error with nccl::last_error()'s message. Every collective
// returns when it has completed on the device.
#include <climits>
#include <cmath>
#include <string>

#include "args.h"
#include "nccl.h"
#include "ops.h"
#include "tensor.h"

namespace fd_native {
namespace {

const char* const kDTypeNames[] = {"float32", "int32", "bool"};

void throw_nccl(const Args& a, fd::Status st) {
  if (st == fd::kOk) return;
  throw Napi::Error::New(a.info.Env(), std::string("fused-distill: ") + a.fn + ": " + fd::nccl::last_error());
}

// NCCL loaded and a device answering (or the host emulation), else the reason as an Error.
void ensure_nccl(const Args& a) {
  if (!fd::nccl::available()) throw_nccl(a, fd::kCollectiveError);
}

// An integer argument in [lo, hi].
int int_in(const Args& a, size_t i, const char* name, int lo, int hi) {
  if (i >= a.info.Length() || !a.info[i].IsNumber()) a.type_error(std::string(name) + " must be a number");
  const double v = a.info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v != std::floor(v) || v < lo || v > hi)
    a.range_error(std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                  "], got " + js_number(static_cast<float>(v)));
  return static_cast<int>(v);
}

const DeviceBufferInfo& buffer_arg(const Args& a, size_t i, const char* name) {
  if (i >= a.info.Length()) a.type_error(std::string(name) + " must be a device buffer handle");
  return device_buffer(a, a.info[i], name);
}

// count (>= 1) elements, at most the size of `name`.
int64_t count_arg(const Args& a, size_t i, const DeviceBufferInfo& b, const char* name) {
  const int64_t count = a.size(i, "count");
  if (count > b.length)
    a.range_error("count = " + std::to_string(count) + " exceeds the size of " + name + " (" +
                  std::to_string(b.length) + ")");
  return count;
}

// The communicator's size and this rank (an Error when there is none).
void comm(const Args& a, int* nranks, int* rank) { throw_nccl(a, fd::nccl::comm_info(nranks, rank)); }

Napi::Value IsAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fd::nccl::available());
}

Napi::Value LastError(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), fd::nccl::last_error()); }

Napi::Value Version(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.nccl.version", [&](const Args& a) -> Napi::Value {
    ensure_nccl(a);
    int code = 0;
    throw_nccl(a, fd::nccl::version(&code));
    return Napi::Number::New(info.Env(), code);
  });
}

Napi::Value UniqueId(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.nccl.uniqueId", [&](const Args& a) -> Napi::Value {
    ensure_nccl(a);
    Napi::Uint8Array id = Napi::Uint8Array::New(info.Env(), fd::nccl::kUniqueIdBytes);
    throw_nccl(a, fd::nccl::unique_id(id.Data()));
    return id;
  });
}

// initRank(id, nranks, rank): id is rank 0's uniqueId() (128 bytes), the same on every rank.
Napi::Value InitRank(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.nccl.initRank", [&](const Args& a) -> Napi::Value {
    a.expect_count(3);
    const std::string expected = "id must be a Uint8Array of " + std::to_string(fd::nccl::kUniqueIdBytes) +
                                 " bytes (from uniqueId())";
    const TypedView id = typed_view(a, info[0], expected);
    if (id.type != napi_uint8_array) a.type_error(expected);
    if (id.length != fd::nccl::kUniqueIdBytes || id.data == nullptr)
      a.range_error(expected + ", got " + std::to_string(id.length) + " bytes");
    const int nranks = int_in(a, 1, "nranks", 1, INT_MAX);
    const int rank = int_in(a, 2, "rank", 0, nranks - 1);
    ensure_nccl(a);
    throw_nccl(a, fd::nccl::init_rank(static_cast<const uint8_t*>(id.data), nranks, rank));
    return info.Env().Undefined();
  });
}

// allGather(send, recv, count): recv[r * count ..] = rank r's send[0 .. count), same dtype.
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.nccl.allGather", [&](const Args& a) -> Napi::Value {
    a.expect_count(3);
    ensure_nccl(a);
    const DeviceBufferInfo send = buffer_arg(a, 0, "send");
    const DeviceBufferInfo recv = buffer_arg(a, 1, "recv");
    if (send.dtype != recv.dtype)
      a.type_error(std::string("send is a ") + kDTypeNames[send.dtype] + " buffer but recv is a " +
                   kDTypeNames[recv.dtype] + " buffer");
    const int64_t count = count_arg(a, 2, send, "send");
    int nranks = 0, rank = 0;
    comm(a, &nranks, &rank);
    if (recv.length < count * nranks)
      a.range_error("recv must hold nranks * count = " + std::to_string(nranks) + " * " + std::to_string(count) +
                    " elements, has " + std::to_string(recv.length));
    // In place only as NCCL allows it: send is this rank's slot of recv.
    if (send.ptr == recv.ptr && rank != 0)
      a.range_error("send and recv are the same buffer: in place needs send at this rank's slot of recv");
    throw_nccl(a, fd::nccl::all_gather(send.ptr, recv.ptr, count, send.dtype));
    return info.Env().Undefined();
  });
}

// broadcast(buf, count, root = 0): root's buf[0 .. count) on every rank, in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.nccl.broadcast", [&](const Args& a) -> Napi::Value {
    a.expect_count(2);
    ensure_nccl(a);
    const DeviceBufferInfo buf = buffer_arg(a, 0, "buf");
    const int64_t count = count_arg(a, 1, buf, "buf");
    int nranks = 0, rank = 0;
    comm(a, &nranks, &rank);
    const int root = a.is_null(2) ? 0 : int_in(a, 2, "root", 0, nranks - 1);
    throw_nccl(a, fd::nccl::broadcast(buf.ptr, count, buf.dtype, root));
    return info.Env().Undefined();
  });
}

// allReduceSum(buf, count): buf[i] = the sum over ranks, float32, in place.
Napi::Value AllReduceSum(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.nccl.allReduceSum", [&](const Args& a) -> Napi::Value {
    a.expect_count(2);
    ensure_nccl(a);
    const DeviceBufferInfo buf = buffer_arg(a, 0, "buf");
    if (buf.dtype != fd::kF32)
      a.type_error(std::string("buf must be a float32 device buffer, got a ") + kDTypeNames[buf.dtype] + " buffer");
    const int64_t count = count_arg(a, 1, buf, "buf");
    int nranks = 0, rank = 0;
    comm(a, &nranks, &rank);
    throw_nccl(a, fd::nccl::all_reduce_sum(static_cast<float*>(buf.ptr), count));
    return info.Env().Undefined();
  });
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda.nccl.destroy", [&](const Args& a) -> Napi::Value {
    ensure_nccl(a);
    throw_nccl(a, fd::nccl::destroy());
    return info.Env().Undefined();
  });
}

}  // namespace

void register_nccl_ops(Napi::Env env, Napi::Object exports) {
  Napi::Object nccl = Napi::Object::New(env);
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"isAvailable", IsAvailable}, {"lastError", LastError},       {"version", Version},
      {"uniqueId", UniqueId},       {"initRank", InitRank},         {"allGather", AllGather},
      {"broadcast", Broadcast},     {"allReduceSum", AllReduceSum}, {"destroy", Destroy},
  };
  for (const auto& [name, fn] : fns) nccl.Set(name, Napi::Function::New(env, fn, name));
  cuda_exports(env, exports).Set("nccl", nccl);
}

}  // namespace fd_native
