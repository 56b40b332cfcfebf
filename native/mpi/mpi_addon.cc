// fused_distill_mpi: the optional MPI transport of src/distributed/mpi.ts, a separate addon so that
// the main addon (fused_distill.node) never depends on libmpi. This file is the N-API boundary only
// (argument checks, buffers, errors); the MPI calls are in mpi_comm.cc, or no_mpi.cc without MPI.
// The collectives block the calling (main) thread until every rank has joined them.
#include <napi.h>

#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "mpi_comm.h"

namespace {

// A rank's part of allgatherv starts at a multiple of this in the result's one ArrayBuffer, so the
// caller may view it as a Float64Array (or any typed array) without copying.
constexpr int64_t kAlign = 8;

[[noreturn]] void throw_error(Napi::Env env, const std::string& message) { throw Napi::Error::New(env, message); }

// Runs fn, turning fd_mpi's errors into JS Errors.
template <typename F>
auto guarded(Napi::Env env, F fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const fd_mpi::Error& e) {
    throw_error(env, e.what());
  }
}

// The Uint8Array argument i of fn (TypeError otherwise). Its data may be null when it is empty.
Napi::Uint8Array bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": bytes must be a Uint8Array");
  }
  return info[i].As<Napi::Uint8Array>();
}

std::string too_large(const char* fn, const std::string& what, int64_t n) {
  return std::string(fn) + ": " + what + " (" + std::to_string(n) +
         " bytes) exceeds the 2^31-1 bytes one MPI call can move; send it in smaller parts";
}

Napi::Value Available(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fd_mpi::built_with_mpi());
}

Napi::Value UnavailableReason(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fd_mpi::unavailable_reason());
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const fd_mpi::Info w = guarded(env, [] { return fd_mpi::init(); });
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", w.rank);
  o.Set("size", w.size);
  o.Set("localRank", w.local_rank);
  o.Set("localSize", w.local_size);
  o.Set("library", w.library);
  return o;
}

// Every rank's bytes, in rank order, as Uint8Array views of one ArrayBuffer. The lengths travel first
// (MPI_Allgather), so every rank sees every length and all refuse a too-large call alike (none is left
// waiting in the second collective).
Napi::Value Allgatherv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array bytes = bytes_arg(info, 0, "allgatherv");
  const int64_t mine = static_cast<int64_t>(bytes.ByteLength());
  const int size = guarded(env, [] { return fd_mpi::world("allgatherv").size; });
  std::vector<int64_t> lengths(size);
  guarded(env, [&] {
    fd_mpi::allgather_counts(mine, lengths.data());
    return 0;
  });
  std::vector<int> counts(size), displs(size);
  int64_t total = 0;
  for (int r = 0; r < size; ++r) {
    if (lengths[r] < 0 || lengths[r] > INT_MAX)
      throw_error(env, too_large("allgatherv", "rank " + std::to_string(r) + "'s part", lengths[r]));
    total = (total + kAlign - 1) / kAlign * kAlign;
    counts[r] = static_cast<int>(lengths[r]);
    displs[r] = static_cast<int>(total > INT_MAX ? 0 : total);
    total += lengths[r];
    if (total > INT_MAX) throw_error(env, too_large("allgatherv", "the gathered result", total));
  }
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, static_cast<size_t>(total));
  // MPI may not be handed null buffers, even for zero counts.
  unsigned char dummy = 0;
  void* send = mine > 0 ? static_cast<void*>(bytes.Data()) : &dummy;
  void* recv = total > 0 ? out.Data() : &dummy;
  guarded(env, [&] {
    fd_mpi::allgatherv(send, static_cast<int>(mine), recv, counts.data(), displs.data());
    return 0;
  });
  Napi::Array parts = Napi::Array::New(env, size);
  for (int r = 0; r < size; ++r) {
    parts.Set(r, Napi::Uint8Array::New(env, static_cast<size_t>(counts[r]), out, static_cast<size_t>(displs[r])));
  }
  return parts;
}

// The root's bytes on every rank (a fresh Uint8Array on each, the root's a copy of its own).
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array bytes = bytes_arg(info, 0, "broadcast");
  const fd_mpi::Info w = guarded(env, [] { return fd_mpi::world("broadcast"); });
  const int size = w.size, rank = w.rank;
  if (info.Length() < 2 || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "broadcast: root must be a rank number");
  const double root_value = info[1].As<Napi::Number>().DoubleValue();
  if (!(root_value >= 0 && root_value < size) || root_value != static_cast<int>(root_value)) {
    throw Napi::RangeError::New(env, "broadcast: root " + info[1].ToString().Utf8Value() +
                                         " is not a rank of this world (0.." + std::to_string(size - 1) + ")");
  }
  const int root = static_cast<int>(root_value);
  int64_t n = rank == root ? static_cast<int64_t>(bytes.ByteLength()) : 0;
  guarded(env, [&] {
    fd_mpi::broadcast_count(&n, root);
    return 0;
  });
  if (n > INT_MAX) throw_error(env, too_large("broadcast", "the root's bytes", n));
  Napi::Uint8Array out = Napi::Uint8Array::New(env, static_cast<size_t>(n));
  if (n == 0) return out;
  if (rank == root) std::memcpy(out.Data(), bytes.Data(), static_cast<size_t>(n));
  guarded(env, [&] {
    fd_mpi::broadcast_bytes(out.Data(), static_cast<int>(n), root);
    return 0;
  });
  return out;
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [] {
    fd_mpi::barrier();
    return 0;
  });
  return info.Env().Undefined();
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [] {
    fd_mpi::finalize();
    return 0;
  });
  return info.Env().Undefined();
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = 1;
  if (info.Length() > 0 && info[0].IsNumber()) code = info[0].As<Napi::Number>().Int32Value();
  fd_mpi::abort(code);
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  exports.Set("available", Napi::Function::New(env, Available, "available"));
  exports.Set("unavailableReason", Napi::Function::New(env, UnavailableReason, "unavailableReason"));
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("allgatherv", Napi::Function::New(env, Allgatherv, "allgatherv"));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  exports.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  exports.Set("finalize", Napi::Function::New(env, Finalize, "finalize"));
  exports.Set("abort", Napi::Function::New(env, Abort, "abort"));
  return exports;
}

}  // namespace

NODE_API_MODULE(fused_distill_mpi, Register)
