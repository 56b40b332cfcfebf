// fd_mpi over MPI (built when native/mpi/mpi_flags.js found MPI). Every call runs on Node's main
// thread (MPI_THREAD_FUNNELED), on a duplicate of MPI_COMM_WORLD whose error handler is
// MPI_ERRORS_RETURN, so a failing call becomes a JS exception instead of MPI's default abort.
#include "mpi_comm.h"

#include <dlfcn.h>
// The C API only: MPI's deprecated C++ bindings are not used (and warn under -Wextra).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdlib>
#include <string>

namespace fd_mpi {
namespace {

enum class State { kNone, kActive, kFinalized };
State g_state = State::kNone;
MPI_Comm g_comm = MPI_COMM_NULL;
Info g_info;

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  throw Error(std::string(call) + " failed: " + (len > 0 ? std::string(text, len) : "error " + std::to_string(rc)));
}

void require_active(const char* what) {
  if (g_state == State::kNone) throw Error(std::string(what) + ": MPI is not initialised (call init() first)");
  if (g_state == State::kFinalized) throw Error(std::string(what) + ": MPI was finalised (the world was closed)");
}

// Node loads an addon with dlopen(RTLD_LAZY), i.e. RTLD_LOCAL, so libmpi (a dependency of this addon)
// and its symbols are private to the addon. Open MPI loads its components (mca_*.so) with dlopen
// later, and a component that does not itself link libmpi / libopen-pal then fails to resolve their
// symbols ("undefined symbol: ompi_..." / "mca_base_component_repository_open: unable to open").
// Re-opening the already loaded libmpi with RTLD_GLOBAL (RTLD_NOLOAD: promote it, never load a second
// copy) makes its symbols visible to those components. Debian's Open MPI 4.1 links its components
// against its own libraries and runs without this (checked with mca_base_component_show_load_errors);
// older Open MPI releases and builds with unlinked plugins need it, and where it is not needed it
// changes nothing.
void promote_libmpi_to_global() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) == 0 || info.dli_fname == nullptr) return;
  // The handle is kept for the life of the process on purpose: libmpi must stay loaded.
  (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

}  // namespace

bool built_with_mpi() { return true; }

std::string unavailable_reason() { return ""; }

bool active() { return g_state == State::kActive; }

Info world(const char* what) {
  require_active(what);
  return g_info;
}

Info init() {
  if (g_state == State::kActive) return g_info;
  if (g_state == State::kFinalized) throw Error("init: MPI was finalised; a process can join an MPI world only once");
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) throw Error("init: MPI was finalised; a process can join an MPI world only once");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    promote_libmpi_to_global();
    int provided = 0;
    // Errors during MPI_Init abort in MPI itself (no error handler exists yet); it prints why.
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  }
  // Error handlers first, so that even MPI_Comm_dup's failure comes back as an error code.
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check(MPI_Comm_dup(MPI_COMM_WORLD, &g_comm), "MPI_Comm_dup");
  check(MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  Info info;
  check(MPI_Comm_rank(g_comm, &info.rank), "MPI_Comm_rank");
  check(MPI_Comm_size(g_comm, &info.size), "MPI_Comm_size");
  MPI_Comm local = MPI_COMM_NULL;
  check(MPI_Comm_split_type(g_comm, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
  check(MPI_Comm_rank(local, &info.local_rank), "MPI_Comm_rank");
  check(MPI_Comm_size(local, &info.local_size), "MPI_Comm_size");
  check(MPI_Comm_free(&local), "MPI_Comm_free");
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  check(MPI_Get_library_version(version, &len), "MPI_Get_library_version");
  std::string text(version, len > 0 ? len : 0);
  info.library = text.substr(0, text.find_first_of("\n\r,"));
  while (!info.library.empty() && (info.library.back() == ' ' || info.library.back() == '\0')) info.library.pop_back();
  g_info = info;
  g_state = State::kActive;
  return g_info;
}

void allgather_counts(int64_t mine, int64_t* all) {
  require_active("allgatherv");
  check(MPI_Allgather(&mine, 1, MPI_INT64_T, all, 1, MPI_INT64_T, g_comm), "MPI_Allgather");
}

void allgatherv(const void* send, int count, void* recv, const int* counts, const int* displs) {
  require_active("allgatherv");
  check(MPI_Allgatherv(send, count, MPI_BYTE, recv, counts, displs, MPI_BYTE, g_comm), "MPI_Allgatherv");
}

void broadcast_count(int64_t* n, int root) {
  require_active("broadcast");
  check(MPI_Bcast(n, 1, MPI_INT64_T, root, g_comm), "MPI_Bcast");
}

void broadcast_bytes(void* data, int count, int root) {
  require_active("broadcast");
  check(MPI_Bcast(data, count, MPI_BYTE, root, g_comm), "MPI_Bcast");
}

void barrier() {
  require_active("barrier");
  check(MPI_Barrier(g_comm), "MPI_Barrier");
}

void finalize() {
  if (g_state != State::kActive) return;
  g_state = State::kFinalized;
  MPI_Comm_free(&g_comm);
  check(MPI_Finalize(), "MPI_Finalize");
}

void abort(int code) {
  // MPI_Abort is not allowed before MPI_Init or after MPI_Finalize: then there is no run to end but
  // this process's.
  if (g_state == State::kActive) MPI_Abort(g_comm, code);
  std::_Exit(code);  // MPI_Abort does not return; if it ever did, the rank must still end
}

}  // namespace fd_mpi
