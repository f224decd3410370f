#include "lstmlearn/thread_pool.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <new>
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
#endif
#if defined(__linux__)
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <immintrin.h>
#define LSTMLEARN_PAUSE() _mm_pause()
#elif defined(__aarch64__) && !defined(_MSC_VER)
#define LSTMLEARN_PAUSE() __asm__ __volatile__("yield")
#else
#define LSTMLEARN_PAUSE() std::this_thread::yield()
#endif

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {
// Eigen places buffers of up to EIGEN_STACK_ALLOCATION_LIMIT bytes on the
// stack; compute threads get room to spare whatever the platform's default.
constexpr std::size_t kWorkerStackBytes = std::size_t{8} << 20;

// How long an idle thread polls before it sleeps on a condition variable.
constexpr auto kSpin = std::chrono::microseconds(50);

// Team members waiting for each other (SpinBarrier, Progress) spin up to
// kTeamSpins pause instructions before they sleep: a step of the recurrence
// takes microseconds, so on cores of their own a partner arrives within the
// spin, and waking a sleeper (tens to hundreds of microseconds in a VM) is
// avoided.
constexpr int kTeamSpins = 4096;

// Whether the machine has more runnable threads than CPUs. Linux counts the
// runnable threads (/proc/loadavg, this one included); the count is sampled
// at most every kLoadCheck into a moving average (a quarter per sample), and
// the machine counts as oversubscribed from an average above the CPUs online
// plus a half until it is back at or below their number, so that a passing
// burst does not switch teams back and forth (a team of another size packs
// its weights anew). A team synchronises at every step, so when its members
// cannot all hold a core at once, each step waits for a member to be
// scheduled again. In benchmarks/bench_threads.py, 4 processes of 2-thread
// teams on 2 cores, each making 300 one-sample predictions, used 82 s of CPU
// against 0.93 s for 4 one-thread processes (3 stacked layers) and 31 s
// against 4.2 s (one wide layer). So run_team then runs the caller alone
// (results do not depend on the team's size). Elsewhere: never.
constexpr auto kLoadCheck = std::chrono::milliseconds(10);

std::atomic<bool> check_oversubscription{true};

bool machine_oversubscribed() {
#if defined(__linux__)
  if (!check_oversubscription.load(std::memory_order_relaxed)) return false;
  static std::atomic<long long> next_check{0};
  static std::atomic<int> average16{0};  // runnable threads, moving average x 16
  static std::atomic<bool> oversubscribed{false};
  static const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const long long now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
  long long due = next_check.load(std::memory_order_relaxed);
  if (now < due ||
      !next_check.compare_exchange_strong(due, now + std::chrono::nanoseconds(kLoadCheck).count(),
                                          std::memory_order_relaxed)) {
    return oversubscribed.load(std::memory_order_relaxed);
  }
  // Only the thread that moved next_check gets here. "0.52 0.58 0.59 3/467
  // 12345": the fourth field is runnable/total.
  char text[128];
  const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || cpus < 1) return false;
  const ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* field = text;
  for (int k = 0; k < 3 && field; ++k) {
    field = std::strchr(field, ' ');
    if (field) ++field;
  }
  if (!field) return false;
  const long runnable = std::strtol(field, nullptr, 10);
  const int average = (3 * average16.load(std::memory_order_relaxed) +
                       16 * static_cast<int>(std::min(runnable, 4096L))) /
                      4;
  average16.store(average, std::memory_order_relaxed);
  bool over = oversubscribed.load(std::memory_order_relaxed);
  if (average > 16 * cpus + 8) over = true;
  if (average <= 16 * cpus) over = false;
  oversubscribed.store(over, std::memory_order_relaxed);
  return over;
#else
  return false;
#endif
}

}  // namespace

void set_oversubscription_check(bool enabled) {
  check_oversubscription.store(enabled, std::memory_order_relaxed);
}

namespace {
// Polls `ready` for up to kSpin; true if it became true.
template <typename Ready>
bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int k = 0; k < 64; ++k) {
      if (ready()) return true;
      LSTMLEARN_PAUSE();
    }
    if (std::chrono::steady_clock::now() > deadline) return ready();
  }
}
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

namespace {
// Read on every call, so relaxed: a new limit applies from the next job on.
std::atomic<int> limit{0};
}  // namespace

void set_thread_limit(int n_threads) {
  limit.store(n_threads > 0 ? n_threads : 0, std::memory_order_relaxed);
}

int thread_limit() { return limit.load(std::memory_order_relaxed); }

int resolve_threads(int n_threads) {
  const int wanted = n_threads <= 0 ? available_cores() : n_threads;
  const int cap = thread_limit();
  return cap > 0 ? std::min(wanted, cap) : wanted;
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

#ifndef _WIN32
namespace {
// Set in a forked child, whose copy of the pool names threads that were not
// copied. A flag rather than comparing getpid() on every call: that is a
// system call on each job, measurable on one-sample predictions.
std::atomic<bool> forked_child{false};
void mark_forked_child() { forked_child.store(true, std::memory_order_relaxed); }
}  // namespace
#endif

ThreadPool& ThreadPool::instance() {
  // Never destroyed: joining threads during interpreter shutdown can deadlock.
  static ThreadPool* pool = [] {
#ifndef _WIN32
    pthread_atfork(nullptr, nullptr, &mark_forked_child);
#endif
    return new ThreadPool();
  }();
#ifndef _WIN32
  // A plain load first: a read-modify-write on every job would cost more.
  if (forked_child.load(std::memory_order_relaxed) &&
      forked_child.exchange(false, std::memory_order_relaxed)) {
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

void ThreadPool::run_tasks(const std::function<void(std::size_t)>& job) {
  for (;;) {
    const std::size_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) return;
    try {
      job(task);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_task_.store(n_tasks_, std::memory_order_relaxed);  // skip what has not started
    }
  }
}

void ThreadPool::worker_loop(int index, unsigned long seen) {
  // `seen` is the generation before the thread was created, so a job posted
  // while the thread was starting is not missed.
  enable_flush_to_zero();
  for (;;) {
    auto moved = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(moved)) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, moved);
    }
    const std::function<void(std::size_t)>* job = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_.load(std::memory_order_relaxed);
      if (index < active_threads_) job = job_;
    }
    if (!job) continue;
    run_tasks(*job);
    if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(std::size_t n_tasks, int n_threads,
                              const std::function<void(std::size_t)>& fn) {
  if (n_tasks == 0) return;
  FlushToZeroScope ftz;  // the caller computes too
  const int want = static_cast<int>(
      std::min<std::size_t>(n_tasks, static_cast<std::size_t>(resolve_threads(n_threads))));
  if (want <= 1) {
    for (std::size_t task = 0; task < n_tasks; ++task) fn(task);
    return;
  }
  std::lock_guard<std::mutex> dispatch(dispatch_mutex_);
  grow(want - 1);
  run_job(n_tasks, std::min(want - 1, size_locked()), fn);
}

void ThreadPool::run_team(int max_size, int n_threads,
                          const std::function<void(int, int, SpinBarrier&)>& fn) {
  FlushToZeroScope ftz;
  const int want = std::min(std::max(max_size, 1), resolve_threads(n_threads));
  if (want <= 1 || machine_oversubscribed()) {
    SpinBarrier alone(1);
    fn(0, 1, alone);
    return;
  }
  std::lock_guard<std::mutex> dispatch(dispatch_mutex_);
  grow(want - 1);
  // Every member must run at once (members wait for each other), so the team
  // has one member per thread that exists: the caller and `helpers` threads.
  // Each takes one task and cannot take a second before all are taken.
  const int helpers = std::min(want - 1, size_locked());
  const int team = helpers + 1;
  SpinBarrier barrier(team);
  const std::function<void(std::size_t)> task = [&](std::size_t rank) {
    fn(static_cast<int>(rank), team, barrier);
  };
  run_job(static_cast<std::size_t>(team), helpers, task);
}

int ThreadPool::size_locked() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(threads_.size());
}

void ThreadPool::run_job(std::size_t n_tasks, int helpers,
                         const std::function<void(std::size_t)>& fn) {
  // Called with dispatch_mutex_ held.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    active_threads_ = helpers;
    running_.store(helpers, std::memory_order_relaxed);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_tasks(fn);
  auto finished = [&] { return running_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(finished)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, finished);
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;
    std::swap(error, error_);
  }
  if (error) std::rethrow_exception(error);
}

#ifndef _WIN32
// Every live ForkSafeMutex, and the pthread_atfork handlers that keep them
// usable in a child (see thread_pool.hpp). Never destroyed, like the pool: an
// object may outlive static destruction at interpreter exit.
struct ForkRegistry {
  std::mutex mutex;  // guards `members`; held across fork()
  std::vector<ForkSafeMutex*> members;

  static ForkRegistry& get() {
    static ForkRegistry* registry = [] {
      auto* r = new ForkRegistry();
      pthread_atfork(&prepare, &parent, &child);
      return r;
    }();
    return *registry;
  }

  // Held across fork() so that the child's list is not half-updated. Nobody
  // waits for the GIL while holding it, so a thread forking from Python
  // cannot deadlock here.
  static void prepare() { get().mutex.lock(); }
  static void parent() { get().mutex.unlock(); }
  // Only the forking thread exists in the child, and it holds none of these
  // mutexes (a call takes its own only after releasing the GIL, which a fork
  // from Python needs): the threads that held any are gone. A mutex still
  // locked is re-created unlocked (placement new: std::mutex has no other way
  // to reset) and flagged.
  static void child() {
    ForkRegistry& r = get();
    new (&r.mutex) std::mutex();
    for (ForkSafeMutex* m : r.members) {
      if (m->mutex_.try_lock()) {
        m->mutex_.unlock();
      } else {
        new (&m->mutex_) std::mutex();
        m->interrupted_ = true;
      }
    }
  }
};

ForkSafeMutex::ForkSafeMutex() {
  ForkRegistry& r = ForkRegistry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.members.push_back(this);
}

ForkSafeMutex::~ForkSafeMutex() {
  ForkRegistry& r = ForkRegistry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.members.erase(std::find(r.members.begin(), r.members.end(), this));
}
#else
ForkSafeMutex::ForkSafeMutex() = default;
ForkSafeMutex::~ForkSafeMutex() = default;
#endif

void SpinBarrier::wait() {
  const unsigned phase = phase_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
    arrived_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      phase_.store(phase + 1, std::memory_order_seq_cst);
    }
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_.notify_all();
    return;
  }
  for (int k = 0; k < kTeamSpins; ++k) {
    if (phase_.load(std::memory_order_acquire) != phase) return;
    LSTMLEARN_PAUSE();
  }
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return phase_.load(std::memory_order_acquire) != phase; });
  }
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

void Progress::publish(int value) {
  // seq_cst store, then seq_cst load: either this sees a sleeper and wakes
  // it, or the sleeper's check under the mutex sees the new value.
  value_.store(value, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
    }
    wake_.notify_all();
  }
}

void Progress::wait_at_least(int target) {
  for (int k = 0; k < kTeamSpins; ++k) {
    if (value_.load(std::memory_order_acquire) >= target) return;
    LSTMLEARN_PAUSE();
  }
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return value_.load(std::memory_order_acquire) >= target; });
  }
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
