// A persistent pool of compute threads.
//
// The calling thread takes tasks too, under a flush-to-zero scope that it
// restores afterwards, so a one-task job costs no thread wake-up at all. Pool
// threads flush denormals to zero for their whole life. Between jobs they
// spin for a few tens of microseconds before sleeping, because a training
// loop posts its next job almost at once.
//
// Determinism: callers cut their work into tasks whose number and contents do
// not depend on the thread count, and each task writes disjoint outputs, so a
// result never depends on which thread ran which task.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

#ifndef _WIN32
#include <pthread.h>
#endif

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

// Number of cores this process may run on (affinity-aware on Linux).
int available_cores();

// Resolves a user's thread request: n <= 0 means all cores, otherwise n;
// either way no more than the thread limit, if one is set.
int resolve_threads(int n_threads);

// The process-wide thread limit of this copy of the engine (threadpoolctl's
// threadpool_limits sets it): every call, whatever it asks for, runs on at
// most `n_threads` threads. n_threads <= 0 removes the limit;
// thread_limit() is 0 when there is none.
void set_thread_limit(int n_threads);
int thread_limit();

// Whether run_team checks for an oversubscribed machine (on by default; see
// thread_pool.cpp). Off, a team always has as many members as it may: the
// tests turn it off so that they run the same code on a busy machine.
void set_oversubscription_check(bool enabled);

// A reusable barrier for the members of a team; waiters spin, then sleep.
class SpinBarrier {
 public:
  explicit SpinBarrier(int count) : count_(count) {}
  void wait();

 private:
  const int count_;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> phase_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

// A count that one team member raises and others wait on (the stages of a
// pipeline), without a full barrier. Waiters spin as at a SpinBarrier, then
// sleep until publish() wakes them.
class Progress {
 public:
  // Sets the count (a release store) and wakes those waiting for it.
  void publish(int value);
  // Returns once the count is >= target (an acquire load).
  void wait_at_least(int target);

 private:
  std::atomic<int> value_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

class ThreadPool {
 public:
  static ThreadPool& instance();

  // Runs fn(task) for task in [0, n_tasks) on up to n_threads pool threads and
  // returns when all are done. The first exception a task throws is rethrown
  // here after every started task has finished.
  void parallel_for(std::size_t n_tasks, int n_threads, const std::function<void(std::size_t)>& fn);

  // Runs fn(rank, size, barrier) once on each member of a team of
  // size <= min(max_size, n_threads), all members running at the same time,
  // so they may wait for each other on `barrier` (sized for the team). A
  // member must not throw. While the machine has more runnable threads than
  // CPUs, the team is the caller alone (see thread_pool.cpp).
  void run_team(int max_size, int n_threads, const std::function<void(int, int, SpinBarrier&)>& fn);

  int size() const;

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

 private:
  ThreadPool() = default;
  void grow(int n_threads);
  void worker_loop(int index, unsigned long seen);
  void run_tasks(const std::function<void(std::size_t)>& job);
  void run_job(std::size_t n_tasks, int helpers, const std::function<void(std::size_t)>& fn);
  int size_locked() const;
  friend struct PoolAccess;

  std::mutex dispatch_mutex_;  // one parallel_for at a time
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
#ifdef _WIN32
  std::vector<unsigned> threads_;  // thread ids; the threads run detached
#else
  std::vector<pthread_t> threads_;
#endif

  // State of the current job: written under mutex_ before generation_ moves,
  // read under mutex_ by a worker that saw it move.
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::size_t n_tasks_ = 0;
  int active_threads_ = 0;                 // pool threads taking part in this job
  std::atomic<std::size_t> next_task_{0};  // next task to hand out
  std::atomic<int> running_{0};            // pool threads still inside the job
  std::atomic<unsigned long> generation_{0};
  std::exception_ptr error_;  // first exception of the job, under mutex_
};

// A mutex that survives fork(). Each engine object that Python threads share
// takes one around every call (its workspace is shared state). A child forked
// while another thread held such a mutex would wait forever for a thread that
// was not copied; so every ForkSafeMutex is listed in a registry, and
// pthread_atfork handlers hold the registry's own mutex across fork() (the
// list is then whole in the child) and, in the child, re-create every listed
// mutex unlocked, remembering those that were held: the call that held one
// was cut short, and the state it guards may be half-written (see
// interrupted_by_fork). Windows has no fork(): a plain mutex there.
// BasicLockable, for std::lock_guard and std::unique_lock.
class ForkSafeMutex {
 public:
  ForkSafeMutex();
  ~ForkSafeMutex();
  ForkSafeMutex(const ForkSafeMutex&) = delete;
  ForkSafeMutex& operator=(const ForkSafeMutex&) = delete;

  void lock() { mutex_.lock(); }
  void unlock() { mutex_.unlock(); }

  // True, once, in a child forked while another thread held this mutex.
  // Call with the mutex held; the owner then drops the state the cut-short
  // call left (without freeing it: a buffer may be mid-reallocation).
  bool interrupted_by_fork() {
    const bool interrupted = interrupted_;
    interrupted_ = false;
    return interrupted;
  }

 private:
  friend struct ForkRegistry;
  std::mutex mutex_;
  bool interrupted_ = false;  // set only in a forked child, before any other thread exists
};

// Convenience wrapper over the shared pool.
inline void parallel_for(std::size_t n_tasks, int n_threads,
                         const std::function<void(std::size_t)>& fn) {
  ThreadPool::instance().parallel_for(n_tasks, n_threads, fn);
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
