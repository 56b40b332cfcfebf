// The MPI side of the fused_distill_mpi addon as plain C++ (no N-API): mpi_comm.cc implements it over
// MPI, no_mpi.cc when the build found no MPI (every call but the two queries throws the reason).
// Errors are thrown as fd_mpi::Error, whose message names the MPI call and MPI's own description.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fd_mpi {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Info {
  int rank = 0, size = 1;
  int local_rank = 0, local_size = 1;  // among the ranks on this machine (MPI_COMM_TYPE_SHARED)
  std::string library;                 // MPI_Get_library_version, first line
};

// False in the stub build; then unavailable_reason() says how to get MPI.
bool built_with_mpi();
std::string unavailable_reason();

// MPI_Init_thread (once per process; later calls return the same Info). Throws after finalize().
Info init();
// True between init() and finalize(): the collectives below throw otherwise.
bool active();
// The Info of init(); throws an Error starting with `what` outside init()..finalize().
Info world(const char* what);

// Every rank's `mine`, in rank order, into all[0..size).
void allgather_counts(int64_t mine, int64_t* all);
// MPI_Allgatherv of MPI_BYTE: rank r's counts[r] bytes land at recv + displs[r].
void allgatherv(const void* send, int count, void* recv, const int* counts, const int* displs);
// MPI_Bcast of one int64 from root.
void broadcast_count(int64_t* n, int root);
// MPI_Bcast of `count` bytes from root.
void broadcast_bytes(void* data, int count, int root);
void barrier();
// MPI_Finalize (once; later calls do nothing).
void finalize();
// MPI_Abort on the run's communicator: ends every rank with `code` (only this process outside
// init()..finalize()).
[[noreturn]] void abort(int code);

}  // namespace fd_mpi
