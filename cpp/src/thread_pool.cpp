#include "lstmlearn/thread_pool.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <tuple>

#ifdef _WIN32
// Without NOMINMAX, <windows.h> defines min and max as macros, which breaks
// every std::min( and std::max( below.
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <process.h>
#include <windows.h>
#else
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {
// Eigen places GEMM packing buffers of up to EIGEN_STACK_ALLOCATION_LIMIT
// bytes on the stack; give compute threads room for several of them.
constexpr std::size_t kWorkerStackBytes = std::size_t{32} << 20;
}  // namespace

int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

int resolve_threads(int n_threads) {
  if (n_threads <= 0) return available_cores();
  return n_threads;
}

struct PoolAccess {
  static void* entry(void* arg) {
    auto* self = static_cast<std::tuple<ThreadPool*, int, unsigned long>*>(arg);
    auto [pool, index, generation] = *self;
    delete self;
    pool->worker_loop(index, generation);
    return nullptr;
  }
#ifdef _WIN32
  static unsigned __stdcall win_entry(void* arg) {
    entry(arg);
    return 0;
  }
#endif
};

ThreadPool& ThreadPool::instance() {
  // Never destroyed: joining threads during interpreter shutdown can deadlock.
  static ThreadPool* pool = new ThreadPool();
#ifndef _WIN32
  if (pool->owner_pid_ != 0 && pool->owner_pid_ != static_cast<long>(getpid())) {
    pool = new ThreadPool();  // after fork the parent's threads do not exist
  }
#endif
  return *pool;
}

int ThreadPool::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(threads_.size());
}

void ThreadPool::grow(int n_threads) {
  // Called with dispatch_mutex_ held and no job running.
  while (static_cast<int>(threads_.size()) < n_threads) {
    const int index = static_cast<int>(threads_.size());
#ifdef _WIN32
    // std::thread cannot choose its stack size, and a Windows thread gets the
    // default from the executable's header (a few MB for python.exe), too
    // little for several of Eigen's stack buffers; reserve kWorkerStackBytes
    // as on POSIX.
    auto* arg = new std::tuple<ThreadPool*, int, unsigned long>(this, index, generation_);
    unsigned id = 0;
    const std::uintptr_t handle =
        _beginthreadex(nullptr, static_cast<unsigned>(kWorkerStackBytes), &PoolAccess::win_entry,
                       arg, STACK_SIZE_PARAM_IS_A_RESERVATION, &id);
    if (handle == 0) {
      delete arg;
      if (threads_.empty()) throw std::runtime_error("lstmlearn: cannot start a compute thread");
      return;  // run with the threads we have
    }
    CloseHandle(reinterpret_cast<HANDLE>(handle));  // the thread runs detached
    threads_.push_back(id);
#else
    owner_pid_ = static_cast<long>(getpid());
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kWorkerStackBytes);
    pthread_t handle;
    auto* arg = new std::tuple<ThreadPool*, int, unsigned long>(this, index, generation_);
    const int rc = pthread_create(&handle, &attr, &PoolAccess::entry, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      delete arg;
      if (threads_.empty()) throw std::runtime_error("lstmlearn: cannot start a compute thread");
      return;  // run with the threads we have
    }
    pthread_detach(handle);
    threads_.push_back(handle);
#endif
  }
}

void ThreadPool::run_tasks() {
  // Called with mutex_ held; takes tasks until none are left.
  while (next_task_ < n_tasks_) {
    const std::size_t task = next_task_++;
    const auto* job = job_;
    mutex_.unlock();
    try {
      (*job)(task);
    } catch (...) {
      mutex_.lock();
      if (!error_) error_ = std::current_exception();
      next_task_ = n_tasks_;  // skip what has not started
      continue;
    }
    mutex_.lock();
  }
}

void ThreadPool::worker_loop(int index, unsigned long seen) {
  // `seen` is the generation before the thread was created, so a job posted
  // while the thread was starting is not missed.
  enable_flush_to_zero();
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return generation_ != seen; });
    seen = generation_;
    if (index >= active_threads_) continue;
    run_tasks();
    if (--running_ == 0) done_.notify_all();
  }
}

void ThreadPool::parallel_for(std::size_t n_tasks, int n_threads,
                              const std::function<void(std::size_t)>& fn) {
  if (n_tasks == 0) return;
  std::lock_guard<std::mutex> dispatch(dispatch_mutex_);
  const int want = std::max(1, static_cast<int>(std::min<std::size_t>(
                                   n_tasks, static_cast<std::size_t>(resolve_threads(n_threads)))));
  grow(want);
  std::unique_lock<std::mutex> lock(mutex_);
  const int use = std::min(want, static_cast<int>(threads_.size()));
  job_ = &fn;
  n_tasks_ = n_tasks;
  next_task_ = 0;
  active_threads_ = use;
  running_ = use;
  error_ = nullptr;
  ++generation_;
  wake_.notify_all();
  done_.wait(lock, [&] { return running_ == 0; });
  job_ = nullptr;
  std::exception_ptr error = error_;
  error_ = nullptr;
  lock.unlock();
  if (error) std::rethrow_exception(error);
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
