// record_pump.cc — native per-connection record pump (see record_pump.h).
//
// Wire format (must match src/proto/record.ts):
//   record     = length(2, big-endian) || ciphertext(length)
//   ciphertext = ChaCha20-Poly1305-IETF(key, nonce, ad = empty, type(1) || body) || tag(16)
//   nonce      = 4 zero bytes || counter (64-bit little-endian)
// Types: 0 DATA (empty body allowed, ignored), 1 END (no body), 2 ABORT (ASCII reason).
//
// Threading: one pthread per connection (not the libuv pool). The thread
// owns both fds from the moment startPump returns and closes them before it
// reports. The JS thread only touches the shared cancel state (eventfd).
//
// Memory per connection: a direction holds its buffer (sealing: one max
// record, 65537 bytes; opening: one max record + 64 KiB of read-ahead) only
// while it has something to move. The buffer is taken when the source is
// read and given back before the thread blocks in poll(2) once nothing is
// pending in it (no record in flight, no partial record, no unwritten
// plaintext), so an idle connection holds none. Given-back buffers go to a
// small process-wide cache (kPoolMax per size), so bulk transfers do not
// allocate (or fault in fresh pages) per record. Backpressure is natural: a
// source is not read while the previous output to its destination is not
// fully written.
//
// Man pages relied on: poll(2), recv(2), send(2), shutdown(2), eventfd(2),
// fcntl(2), fstat(2), socket(7), pthread_create(3), pthread_sigmask(3).
#include "record_pump.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "errno_error.h"

namespace jumper {

namespace {

constexpr size_t kLenBytes = 2;
constexpr size_t kTypeBytes = 1;
constexpr size_t kTagBytes = 16;
constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kMaxCiphertext = 65535;
constexpr size_t kMaxBody = kMaxCiphertext - kTagBytes - kTypeBytes;  // 65518
constexpr size_t kMinCiphertext = kTypeBytes + kTagBytes;               // 17
constexpr size_t kMaxRecord = kLenBytes + kMaxCiphertext;               // 65537
constexpr size_t kReadAhead = 64 * 1024;
constexpr size_t kInCapacity = kMaxRecord + kReadAhead;
constexpr size_t kMaxAbortReason = 64;
// Same limit as record.ts (Number.MAX_SAFE_INTEGER): the JS side must be
// able to count what we did.
constexpr uint64_t kMaxNonce = (uint64_t{1} << 53) - 1;
constexpr uint8_t kTypeData = 0;
constexpr uint8_t kTypeEnd = 1;
constexpr uint8_t kTypeAbort = 2;
// Full-size plain reads handled back to back before looking at the other
// direction again (fairness vs. fewer poll calls in bulk transfers).
constexpr int kBurst = 8;
// Virtual size: only the pages touched count (about 8 KiB: the thread
// descriptor with static TLS, and a shallow call chain).
constexpr size_t kThreadStack = 256 * 1024;
// Buffers kept for reuse per size, process-wide (at most ~3 MiB in all).
constexpr size_t kPoolMax = 16;
constexpr auto kTeardownWait = std::chrono::seconds(5);

std::string ErrnoName(int error) {
  const char* name = ::strerrorname_np(error);
  return name != nullptr ? std::string(name) : "E" + std::to_string(error);
}

// record.ts sealAbort/open: [^a-z0-9_:.-] -> '_', at most 64 characters.
std::string SanitizeReason(const char* text, size_t length) {
  std::string out;
  length = std::min(length, kMaxAbortReason);
  out.reserve(length);
  for (size_t i = 0; i < length; i++) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == ':' || c == '.' || c == '-';
    out.push_back(ok ? static_cast<char>(c) : '_');
  }
  return out;
}

// A process-wide cache of same-size buffers, shared by all pump threads.
// Never destroyed (detached pump threads may outlive static destructors).
class BufferPool {
 public:
  explicit BufferPool(size_t size) : size_(size) { free_.reserve(kPoolMax); }

  size_t size() const { return size_; }

  // nullptr when out of memory.
  uint8_t* Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        uint8_t* p = free_.back();
        free_.pop_back();
        return p;
      }
    }
    return new (std::nothrow) uint8_t[size_];
  }

  void Give(uint8_t* p) {
    if (p == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (free_.size() < kPoolMax) {
        free_.push_back(p);
        return;
      }
    }
    delete[] p;
  }

 private:
  const size_t size_;
  std::mutex mu_;
  std::vector<uint8_t*> free_;  // guarded by mu_
};

BufferPool& SealPool() {
  static BufferPool* pool = new BufferPool(kMaxRecord);
  return *pool;
}

BufferPool& OpenPool() {
  static BufferPool* pool = new BufferPool(kInCapacity);
  return *pool;
}

void MakeNonce(uint64_t counter, uint8_t nonce[kNonceBytes]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

struct PumpResult {
  std::string reason = "done";
  std::string detail;
  std::string side;  // 'plain' | 'wire' | 'local' ('' when done)
  uint64_t bytes_up = 0;
  uint64_t bytes_down = 0;
};

// State shared between the JS thread (cancel, teardown) and the pump thread.
struct Shared {
  int cancel_fd = -1;  // guarded by mu once the thread runs (it only polls it)
  std::mutex mu;
  bool cancel_requested = false;  // guarded by mu
  std::string cancel_reason;      // guarded by mu
  std::condition_variable cv;
  bool finished = false;  // guarded by mu; set after the final report was queued
  // JS thread only: the env cleanup hook's argument while it is registered.
  std::shared_ptr<Shared>* hook_arg = nullptr;

  ~Shared() {
    if (cancel_fd >= 0) ::close(cancel_fd);
  }

  void Cancel(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu);
    if (cancel_requested || cancel_fd < 0) return;
    cancel_requested = true;
    cancel_reason = reason;
    const uint64_t one = 1;
    ssize_t ignored = ::write(cancel_fd, &one, sizeof one);
    (void)ignored;
  }

  // Pump thread, once the loop is over: the eventfd goes with the sockets,
  // not whenever the JS handle is garbage-collected.
  void CloseCancelFd() {
    std::lock_guard<std::mutex> lock(mu);
    if (cancel_fd >= 0) ::close(cancel_fd);
    cancel_fd = -1;
  }

  std::string CancelReason() {
    std::lock_guard<std::mutex> lock(mu);
    return cancel_reason;
  }
};

struct PumpConfig {
  int plain_fd = -1;
  int wire_fd = -1;
  uint8_t send_key[kKeyBytes] = {};
  uint8_t recv_key[kKeyBytes] = {};
  uint64_t send_counter = 0;
  uint64_t recv_counter = 0;
  std::vector<uint8_t> wire_pending;    // wire bytes read by JS, not yet opened
  std::vector<uint8_t> plain_pending;   // plaintext read by JS, not yet sealed
  std::vector<uint8_t> opened_pending;  // plaintext opened by JS, not yet written to plain
  bool recv_ended = false;              // JS already opened the peer's END

  ~PumpConfig() {
    OPENSSL_cleanse(send_key, sizeof send_key);
    OPENSSL_cleanse(recv_key, sizeof recv_key);
  }
};

// The per-connection state machine. Runs entirely on the pump thread.
class Pump {
 public:
  Pump(std::unique_ptr<PumpConfig> config, std::shared_ptr<Shared> shared)
      : cfg_(std::move(config)), shared_(std::move(shared)) {}

  ~Pump() {
    ReleaseUpBuffer();
    ReleaseInBuffer();
    if (send_ctx_ != nullptr) EVP_CIPHER_CTX_free(send_ctx_);
    if (recv_ctx_ != nullptr) EVP_CIPHER_CTX_free(recv_ctx_);
  }

  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;

  PumpResult Run() {
    if (Setup()) Loop();
    Finish();
    return result_;
  }

 private:
  // ------------------------------------------------------------ helpers --

  bool Fail(const char* reason, std::string detail, const char* side) {
    if (!failed_) {
      failed_ = true;
      result_.reason = reason;
      result_.detail = std::move(detail);
      result_.side = side;
    }
    return false;
  }

  // An errno from a socket call on `side`: what the tunnel peer is told in
  // ABORT follows reasonOf() in src/errors.ts.
  bool FailErrno(int error, const char* side) {
    const std::string name = ErrnoName(error);
    if (error == ECONNRESET || error == EPIPE || error == ENOTCONN) {
      abort_text_ = error == EPIPE ? "peer_closed" : "peer_reset";
      return Fail("peer_reset", name, side);
    }
    abort_text_.clear();
    for (char c : name) abort_text_.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    return Fail("io_error", name, side);
  }

  static bool SetNonBlocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) return false;
    return (flags & O_NONBLOCK) != 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
  }

  bool Setup() {
    if (!SetNonBlocking(cfg_->plain_fd)) return FailErrno(errno, "plain");
    if (!SetNonBlocking(cfg_->wire_fd)) return FailErrno(errno, "wire");
    send_ctx_ = EVP_CIPHER_CTX_new();
    recv_ctx_ = EVP_CIPHER_CTX_new();
    if (send_ctx_ == nullptr || recv_ctx_ == nullptr ||
        EVP_CipherInit_ex(send_ctx_, EVP_chacha20_poly1305(), nullptr, cfg_->send_key, nullptr, 1) != 1 ||
        EVP_CipherInit_ex(recv_ctx_, EVP_chacha20_poly1305(), nullptr, cfg_->recv_key, nullptr, 0) != 1) {
      return Fail("io_error", "openssl_init", "local");
    }
    OPENSSL_cleanse(cfg_->send_key, sizeof cfg_->send_key);
    OPENSSL_cleanse(cfg_->recv_key, sizeof cfg_->recv_key);
    send_counter_ = cfg_->send_counter;
    recv_counter_ = cfg_->recv_counter;
    recv_ended_ = cfg_->recv_ended;
    ciphers_ready_ = true;
    if (!cfg_->wire_pending.empty()) {
      const size_t size = cfg_->wire_pending.size();
      if (size <= kInCapacity) {
        if (!TakeInBuffer()) return false;
      } else {
        in_buf_ = new (std::nothrow) uint8_t[size];
        if (in_buf_ == nullptr) return FailNoMemory();
        in_cap_ = size;
      }
      std::memcpy(in_buf_, cfg_->wire_pending.data(), size);
      in_end_ = cfg_->wire_pending.size();
      std::vector<uint8_t>().swap(cfg_->wire_pending);
    }
    // Work handed over by JS comes first, in stream order.
    if (!cfg_->opened_pending.empty()) {
      down_ptr_ = cfg_->opened_pending.data();
      down_len_ = cfg_->opened_pending.size();
    }
    return DownProgress() && (PlainPendingLeft() == 0 || PumpUp());
  }

  // ------------------------------------------------------------ buffers --

  bool FailNoMemory() { return FailErrno(ENOMEM, "local"); }

  bool TakeUpBuffer() {
    if (up_buf_ != nullptr) return true;
    up_buf_ = SealPool().Take();
    return up_buf_ != nullptr || FailNoMemory();
  }

  void ReleaseUpBuffer() {
    SealPool().Give(up_buf_);
    up_buf_ = nullptr;
  }

  bool TakeInBuffer() {
    if (in_buf_ != nullptr) return true;
    in_buf_ = OpenPool().Take();
    if (in_buf_ == nullptr) return FailNoMemory();
    in_cap_ = OpenPool().size();
    return true;
  }

  void ReleaseInBuffer() {
    if (in_buf_ == nullptr) return;
    if (in_cap_ == OpenPool().size()) {
      OpenPool().Give(in_buf_);
    } else {
      delete[] in_buf_;  // the one-off buffer for an oversized wirePending
    }
    in_buf_ = nullptr;
    in_cap_ = 0;
  }

  // Before blocking: give back each buffer that holds nothing pending.
  void ReleaseIdleBuffers() {
    if (up_buf_ != nullptr && up_len_ == 0) ReleaseUpBuffer();
    if (in_buf_ != nullptr && in_start_ == in_end_ && down_len_ == 0) {
      in_start_ = in_end_ = 0;
      ReleaseInBuffer();
    }
  }

  size_t PlainPendingLeft() const { return cfg_->plain_pending.size() - plain_pending_off_; }

  // ------------------------------------------------- plain -> wire (seal) --

  // Seal the body already at p + 3 (length n) as one record at p.
  bool Seal(uint8_t* p, uint8_t type, size_t n) {
    if (send_counter_ >= kMaxNonce) {
      abort_text_.clear();  // cannot seal an ABORT either
      return Fail("io_error", "nonce_exhausted", "local");
    }
    uint8_t nonce[kNonceBytes];
    MakeNonce(send_counter_++, nonce);
    const size_t ct = kTypeBytes + n + kTagBytes;
    p[0] = static_cast<uint8_t>(ct >> 8);
    p[1] = static_cast<uint8_t>(ct & 0xff);
    p[2] = type;
    int out = 0;
    int final_out = 0;
    if (EVP_CipherInit_ex(send_ctx_, nullptr, nullptr, nullptr, nonce, 1) != 1 ||
        EVP_EncryptUpdate(send_ctx_, p + kLenBytes, &out, p + kLenBytes, static_cast<int>(kTypeBytes + n)) != 1 ||
        EVP_EncryptFinal_ex(send_ctx_, p + kLenBytes + out, &final_out) != 1 ||
        EVP_CIPHER_CTX_ctrl(send_ctx_, EVP_CTRL_AEAD_GET_TAG, kTagBytes, p + kLenBytes + kTypeBytes + n) != 1) {
      abort_text_.clear();
      return Fail("io_error", "openssl_seal", "local");
    }
    up_off_ = 0;
    up_len_ = kLenBytes + ct;
    return true;
  }

  // Write the pending record; on completion of END, half-close the wire.
  bool FlushUp() {
    uint8_t* p = up_buf_;
    while (up_off_ < up_len_) {
      const ssize_t n = ::send(cfg_->wire_fd, p + up_off_, up_len_ - up_off_, MSG_NOSIGNAL);
      if (n > 0) {
        up_off_ += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
      } else {
        return FailErrno(n < 0 ? errno : EPIPE, "wire");
      }
    }
    up_off_ = up_len_ = 0;
    if (end_sealed_ && !up_done_) {
      if (::shutdown(cfg_->wire_fd, SHUT_WR) != 0 && errno != ENOTCONN) return FailErrno(errno, "wire");
      up_done_ = true;
    }
    return true;
  }

  bool CanReadPlain() const {
    return !end_sealed_ && up_len_ == 0 && PlainPendingLeft() == 0;
  }

  // Read plaintext (or take what JS handed over), seal, send at once.
  bool PumpUp() {
    for (int burst = 0; burst < kBurst && !failed_; burst++) {
      if (end_sealed_ || up_len_ != 0) return true;
      if (!TakeUpBuffer()) return false;
      uint8_t* body = up_buf_ + kLenBytes + kTypeBytes;
      size_t n;
      bool full;
      if (PlainPendingLeft() > 0) {
        n = std::min(PlainPendingLeft(), kMaxBody);
        std::memcpy(body, cfg_->plain_pending.data() + plain_pending_off_, n);
        plain_pending_off_ += n;
        if (PlainPendingLeft() == 0) {
          std::vector<uint8_t>().swap(cfg_->plain_pending);
          plain_pending_off_ = 0;
        }
        full = true;  // then try the fd too
      } else {
        const ssize_t r = ::recv(cfg_->plain_fd, body, kMaxBody, 0);
        if (r < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
          return FailErrno(errno, "plain");
        }
        if (r == 0) {
          end_sealed_ = true;
          return Seal(up_buf_, kTypeEnd, 0) && FlushUp();
        }
        n = static_cast<size_t>(r);
        full = n == kMaxBody;
      }
      result_.bytes_up += n;
      if (!Seal(up_buf_, kTypeData, n) || !FlushUp()) return false;
      if (!full) return true;  // short read: the socket is (very likely) drained; poll tells
    }
    return !failed_;
  }

  // ------------------------------------------------- wire -> plain (open) --

  bool FlushDown() {
    while (down_len_ > 0) {
      const ssize_t n = ::send(cfg_->plain_fd, down_ptr_, down_len_, MSG_NOSIGNAL);
      if (n > 0) {
        down_ptr_ += n;
        down_len_ -= static_cast<size_t>(n);
        result_.bytes_down += static_cast<uint64_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
      } else {
        return FailErrno(n < 0 ? errno : EPIPE, "plain");
      }
    }
    if (!cfg_->opened_pending.empty()) std::vector<uint8_t>().swap(cfg_->opened_pending);
    return true;
  }

  // The END was opened and everything before it delivered: half-close plain.
  bool MaybeFinishDown() {
    if (!recv_ended_ || down_done_ || down_len_ != 0) return true;
    if (::shutdown(cfg_->plain_fd, SHUT_WR) != 0 && errno != ENOTCONN) return FailErrno(errno, "plain");
    down_done_ = true;
    return true;
  }

  // Open one record in place. On success the plaintext (type || body) is
  // at ct[0 .. len - 16).
  bool Open(uint8_t* ct, size_t len) {
    if (recv_counter_ >= kMaxNonce) return Fail("io_error", "nonce_exhausted", "wire");
    uint8_t nonce[kNonceBytes];
    MakeNonce(recv_counter_, nonce);
    const size_t text = len - kTagBytes;
    int out = 0;
    int final_out = 0;
    if (EVP_CipherInit_ex(recv_ctx_, nullptr, nullptr, nullptr, nonce, 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(recv_ctx_, EVP_CTRL_AEAD_SET_TAG, kTagBytes, ct + text) != 1 ||
        EVP_DecryptUpdate(recv_ctx_, ct, &out, ct, static_cast<int>(text)) != 1) {
      return Fail("io_error", "openssl_open", "local");
    }
    if (EVP_DecryptFinal_ex(recv_ctx_, ct + out, &final_out) != 1) {
      return Fail("tampered",
                  "record " + std::to_string(recv_counter_) +
                      " failed authentication (tampered, reordered, replayed or wrong key)",
                  "wire");
    }
    recv_counter_++;
    return true;
  }

  // Open and deliver buffered records until one cannot be delivered at once.
  bool ProcessIn() {
    while (down_len_ == 0 && !failed_) {
      const size_t avail = in_end_ - in_start_;
      if (avail == 0) break;
      if (recv_ended_) return Fail("bad_record", "bytes after the end-of-stream record", "wire");
      if (avail < kLenBytes) break;
      uint8_t* rec = in_buf_ + in_start_;
      const size_t len = (static_cast<size_t>(rec[0]) << 8) | rec[1];
      if (len < kMinCiphertext) {
        return Fail("bad_record", "record length " + std::to_string(len) + " is below the minimum 17", "wire");
      }
      if (avail < kLenBytes + len) break;
      uint8_t* ct = rec + kLenBytes;
      if (!Open(ct, len)) return false;
      in_start_ += kLenBytes + len;
      const size_t text = len - kTagBytes;
      const uint8_t type = ct[0];
      if (type == kTypeData) {
        if (text > kTypeBytes) {
          down_ptr_ = ct + kTypeBytes;
          down_len_ = text - kTypeBytes;
          if (!FlushDown()) return false;
        }
      } else if (type == kTypeEnd) {
        if (text != kTypeBytes) return Fail("bad_record", "end-of-stream record carries a body", "wire");
        recv_ended_ = true;
        if (!MaybeFinishDown()) return false;
      } else if (type == kTypeAbort) {
        std::string reason = SanitizeReason(reinterpret_cast<const char*>(ct + kTypeBytes), text - kTypeBytes);
        if (reason.empty()) reason = "unspecified";
        recv_ended_ = true;
        return Fail("peer_abort", reason, "wire");
      } else {
        return Fail("bad_record", "unknown record type " + std::to_string(type), "wire");
      }
    }
    if (in_start_ == in_end_) in_start_ = in_end_ = 0;
    return !failed_;
  }

  // Continue the down direction: finish the pending write, then parse more.
  bool DownProgress() {
    if (!FlushDown()) return false;
    if (down_len_ != 0) return true;
    if (!MaybeFinishDown()) return false;
    return ProcessIn();
  }

  bool CanReadWire() const { return !wire_eof_ && down_len_ == 0; }

  bool ReadWire() {
    if (!TakeInBuffer()) return false;
    if (in_start_ > 0 && in_cap_ - in_end_ < kMaxRecord) {
      std::memmove(in_buf_, in_buf_ + in_start_, in_end_ - in_start_);
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    for (;;) {
      const ssize_t r = ::recv(cfg_->wire_fd, in_buf_ + in_end_, in_cap_ - in_end_, 0);
      if (r > 0) {
        in_end_ += static_cast<size_t>(r);
        return ProcessIn();
      }
      if (r == 0) {
        wire_eof_ = true;
        if (!recv_ended_) {
          return Fail("truncated",
                      in_end_ > in_start_ ? "stream cut inside a record" : "stream cut without the end-of-stream record",
                      "wire");
        }
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return FailErrno(errno, "wire");
    }
  }

  // ------------------------------------------------------------ the loop --

  void Loop() {
    pollfd fds[3];
    while (!failed_ && !(up_done_ && down_done_)) {
      ReleaseIdleBuffers();
      short plain_events = 0;
      short wire_events = 0;
      if (CanReadPlain()) plain_events |= POLLIN;
      if (down_len_ > 0) plain_events |= POLLOUT;
      if (up_len_ > 0) wire_events |= POLLOUT;
      if (CanReadWire()) wire_events |= POLLIN;
      // An fd nobody waits on is left out: a HUP on it would spin poll.
      fds[0] = {plain_events != 0 ? cfg_->plain_fd : -1, plain_events, 0};
      fds[1] = {wire_events != 0 ? cfg_->wire_fd : -1, wire_events, 0};
      fds[2] = {shared_->cancel_fd, POLLIN, 0};
      const int ready = ::poll(fds, 3, -1);
      if (ready < 0) {
        if (errno == EINTR) continue;
        FailErrno(errno, "local");
        return;
      }
      if (fds[2].revents != 0) {
        const std::string reason = shared_->CancelReason();
        abort_text_ = SanitizeReason(reason.data(), reason.size());
        Fail("cancelled", reason, "local");
        return;
      }
      constexpr short kAny = POLLERR | POLLHUP | POLLNVAL;
      const short pr = fds[0].revents;
      const short wr = fds[1].revents;
      if ((wr & (POLLOUT | kAny)) && up_len_ > 0 && !FlushUp()) return;
      if ((pr & (POLLOUT | kAny)) && down_len_ > 0 && !DownProgress()) return;
      if ((pr & (POLLIN | kAny)) && CanReadPlain() && !PumpUp()) return;
      if ((wr & (POLLIN | kAny)) && CanReadWire() && !ReadWire()) return;
    }
  }

  // Best effort, never blocks: finish the record in flight, then ABORT.
  void TrySendAbort() {
    if (abort_text_.empty() || end_sealed_ || result_.side == "wire") return;
    while (up_off_ < up_len_) {
      const ssize_t n = ::send(cfg_->wire_fd, up_buf_ + up_off_, up_len_ - up_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) return;
      up_off_ += static_cast<size_t>(n);
    }
    up_off_ = up_len_ = 0;
    // Small enough for the stack: the up buffer may have been given back.
    uint8_t record[kLenBytes + kTypeBytes + kMaxAbortReason + kTagBytes];
    const size_t n = std::min(abort_text_.size(), kMaxAbortReason);
    std::memcpy(record + kLenBytes + kTypeBytes, abort_text_.data(), n);
    end_sealed_ = true;
    if (!Seal(record, kTypeAbort, n)) return;
    ssize_t ignored = ::send(cfg_->wire_fd, record, up_len_, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
  }

  void Finish() {
    if (failed_) {
      if (ciphers_ready_) TrySendAbort();
      // The plain peer must not mistake a failure for a clean EOF: reset.
      const linger reset = {1, 0};
      ::setsockopt(cfg_->plain_fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    ::close(cfg_->plain_fd);
    ::close(cfg_->wire_fd);
    cfg_->plain_fd = cfg_->wire_fd = -1;
  }

  std::unique_ptr<PumpConfig> cfg_;
  std::shared_ptr<Shared> shared_;
  PumpResult result_;
  bool failed_ = false;
  std::string abort_text_;  // what the tunnel peer is told on a non-wire failure

  EVP_CIPHER_CTX* send_ctx_ = nullptr;
  EVP_CIPHER_CTX* recv_ctx_ = nullptr;
  uint64_t send_counter_ = 0;
  uint64_t recv_counter_ = 0;

  bool ciphers_ready_ = false;  // both contexts keyed (an ABORT can be sealed)

  // plain -> wire
  uint8_t* up_buf_ = nullptr;  // from SealPool(), held only while in use
  size_t up_off_ = 0;
  size_t up_len_ = 0;  // bytes of the sealed record in up_buf_ (0 = nothing pending)
  size_t plain_pending_off_ = 0;
  bool end_sealed_ = false;  // END (or ABORT) sealed: no more records
  bool up_done_ = false;     // END written and the wire half-closed

  // wire -> plain
  uint8_t* in_buf_ = nullptr;  // from OpenPool() (or one-off), held only while in use
  size_t in_cap_ = 0;
  size_t in_start_ = 0;
  size_t in_end_ = 0;
  const uint8_t* down_ptr_ = nullptr;
  size_t down_len_ = 0;  // opened plaintext not yet written to plain
  bool recv_ended_ = false;
  bool wire_eof_ = false;
  bool down_done_ = false;  // END opened, delivered, plain half-closed
};

// ------------------------------------------------------- JS plumbing --

struct Completion {
  PumpResult result;
  std::shared_ptr<Shared> shared;
};

void CleanupHook(void* arg);

void RemoveHook(Napi::Env env, Shared* shared) {
  if (shared->hook_arg == nullptr) return;
  napi_remove_env_cleanup_hook(env, CleanupHook, shared->hook_arg);
  delete shared->hook_arg;
  shared->hook_arg = nullptr;
}

// Environment teardown (process exit, worker termination): stop the thread
// and wait for it, so it never outlives the JS world it reports to.
void CleanupHook(void* arg) {
  auto* holder = static_cast<std::shared_ptr<Shared>*>(arg);
  std::shared_ptr<Shared> shared = *holder;
  shared->hook_arg = nullptr;
  delete holder;
  shared->Cancel("env_teardown");
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait_for(lock, kTeardownWait, [&] { return shared->finished; });
}

void Report(Napi::Env env, Napi::Function on_done, std::nullptr_t* /*context*/, Completion* raw) {
  std::unique_ptr<Completion> completion(raw);
  if (env == nullptr || on_done.IsEmpty()) return;
  RemoveHook(env, completion->shared.get());
  const PumpResult& r = completion->result;
  try {
    Napi::Object out = Napi::Object::New(env);
    out.Set("reason", Napi::String::New(env, r.reason));
    if (!r.detail.empty()) out.Set("detail", Napi::String::New(env, r.detail));
    if (!r.side.empty()) out.Set("side", Napi::String::New(env, r.side));
    out.Set("bytesUp", Napi::Number::New(env, static_cast<double>(r.bytes_up)));
    out.Set("bytesDown", Napi::Number::New(env, static_cast<double>(r.bytes_down)));
    on_done.Call({out});
  } catch (const Napi::Error& error) {
    error.ThrowAsJavaScriptException();
  }
}

using ReportFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, Completion, Report>;

struct ThreadArgs {
  std::unique_ptr<Pump> pump;
  std::shared_ptr<Shared> shared;
  ReportFunction report;
};

void* ThreadMain(void* raw) {
  std::unique_ptr<ThreadArgs> args(static_cast<ThreadArgs*>(raw));
  auto* completion = new Completion{args->pump->Run(), args->shared};
  args->pump.reset();  // buffers and cipher contexts go now
  args->shared->CloseCancelFd();
  if (args->report.NonBlockingCall(completion) != napi_ok) delete completion;
  args->report.Release();
  {
    std::lock_guard<std::mutex> lock(args->shared->mu);
    args->shared->finished = true;
  }
  args->shared->cv.notify_all();
  return nullptr;
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

int FdField(Napi::Env env, const Napi::Object& opts, const char* name) {
  const Napi::Value v = opts.Get(name);
  if (!v.IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > 0x7fffffff) {
    throw Napi::RangeError::New(env, std::string(name) + " must be a file descriptor (integer >= 0)");
  }
  const int fd = static_cast<int>(d);
  struct stat st;
  if (::fstat(fd, &st) != 0) throw MakeErrnoError(env, errno, "fstat", name);
  if (!S_ISSOCK(st.st_mode)) ThrowType(env, std::string(name) + " must be a socket");
  return fd;
}

uint64_t CounterField(Napi::Env env, const Napi::Object& opts, const char* name) {
  const Napi::Value v = opts.Get(name);
  if (!v.IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > static_cast<double>(kMaxNonce)) {
    throw Napi::RangeError::New(env, std::string(name) + " must be an integer in 0..2^53-1");
  }
  return static_cast<uint64_t>(d);
}

void KeyField(Napi::Env env, const Napi::Object& opts, const char* name, uint8_t out[kKeyBytes]) {
  const Napi::Value v = opts.Get(name);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, std::string(name) + " must be a Buffer");
  }
  const auto key = v.As<Napi::Uint8Array>();
  if (key.ElementLength() != kKeyBytes) throw Napi::RangeError::New(env, std::string(name) + " must be 32 bytes");
  std::memcpy(out, key.Data(), kKeyBytes);
}

std::vector<uint8_t> BytesField(Napi::Env env, const Napi::Object& opts, const char* name) {
  const Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, std::string(name) + " must be a Buffer");
  }
  const auto bytes = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ElementLength());
}

void FinalizeHandle(Napi::Env /*env*/, std::shared_ptr<Shared>* handle) { delete handle; }

}  // namespace

// startPump({ plainFd, wireFd, sendKey, recvKey, sendCounter, recvCounter,
//             wirePending?, plainPending?, openedPending?, recvEnded?, onDone })
// Throws (TypeError/RangeError/Error) without taking the fds; once it
// returns, the fds belong to the pump thread.
Napi::Value StartPumpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsObject()) ThrowType(env, "startPump expects one options object");
  const Napi::Object opts = info[0].As<Napi::Object>();
  auto cfg = std::make_unique<PumpConfig>();
  cfg->plain_fd = FdField(env, opts, "plainFd");
  cfg->wire_fd = FdField(env, opts, "wireFd");
  if (cfg->plain_fd == cfg->wire_fd) ThrowType(env, "plainFd and wireFd must differ");
  KeyField(env, opts, "sendKey", cfg->send_key);
  KeyField(env, opts, "recvKey", cfg->recv_key);
  cfg->send_counter = CounterField(env, opts, "sendCounter");
  cfg->recv_counter = CounterField(env, opts, "recvCounter");
  cfg->wire_pending = BytesField(env, opts, "wirePending");
  cfg->plain_pending = BytesField(env, opts, "plainPending");
  cfg->opened_pending = BytesField(env, opts, "openedPending");
  const Napi::Value ended = opts.Get("recvEnded");
  if (!ended.IsUndefined() && !ended.IsBoolean()) ThrowType(env, "recvEnded must be a boolean");
  cfg->recv_ended = ended.IsBoolean() && ended.As<Napi::Boolean>().Value();
  const Napi::Value on_done = opts.Get("onDone");
  if (!on_done.IsFunction()) ThrowType(env, "onDone must be a function");

  auto shared = std::make_shared<Shared>();
  shared->cancel_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (shared->cancel_fd < 0) throw MakeErrnoError(env, errno, "eventfd", "startPump");

  ReportFunction report = ReportFunction::New(env, on_done.As<Napi::Function>(), "jumper_native.pump", 0, 1);
  auto args = std::make_unique<ThreadArgs>();
  args->pump = std::make_unique<Pump>(std::move(cfg), shared);
  args->shared = shared;
  args->report = report;

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kThreadStack);
  // Signals are never delivered to the pump thread (as with libuv's pool).
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  pthread_t thread;
  const int rc = ::pthread_create(&thread, &attr, ThreadMain, args.get());
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    report.Release();
    // Leave the fds to the caller: the pump never started.
    args->pump.reset();
    throw MakeErrnoError(env, rc, "pthread_create", "startPump");
  }
  args.release();  // the thread owns it now

  shared->hook_arg = new std::shared_ptr<Shared>(shared);
  napi_add_env_cleanup_hook(env, CleanupHook, shared->hook_arg);
  return Napi::External<std::shared_ptr<Shared>>::New(env, new std::shared_ptr<Shared>(shared), FinalizeHandle);
}

// cancelPump(handle, reason): idempotent; a finished pump ignores it.
Napi::Value CancelPumpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) ThrowType(env, "cancelPump expects a pump handle");
  std::string reason = "cancelled";
  if (info.Length() >= 2 && info[1].IsString()) reason = info[1].As<Napi::String>().Utf8Value();
  auto* handle = info[0].As<Napi::External<std::shared_ptr<Shared>>>().Data();
  if (handle != nullptr && *handle) (*handle)->Cancel(reason);
  return env.Undefined();
}

// dupFd(fd): a close-on-exec duplicate (shares the socket's open file description).
Napi::Value DupFdJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) ThrowType(env, "dupFd expects a file descriptor");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > 0x7fffffff) {
    throw Napi::RangeError::New(env, "fd must be an integer >= 0");
  }
  const int fd = ::fcntl(static_cast<int>(d), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw MakeErrnoError(env, errno, "fcntl", "dupFd");
  return Napi::Number::New(env, fd);
}

}  // namespace jumper
