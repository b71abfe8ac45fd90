// record_pump.cc — native per-connection record pump (see record_pump.h).
//
// Wire format: record_format.h (must match src/proto/record.ts).
//
// Threading: a Pump is a Stream of the shared reactor (reactor.h): it runs
// on one reactor thread, woken by edge-triggered epoll, and owns both fds
// from the moment startPump returns until its Teardown closes them.
//
// Memory per connection: the Pump (a few hundred bytes) and two cipher
// contexts. A direction holds its buffer (sealing: one max record, 65537
// bytes; opening: one max record + 64 KiB of read-ahead) only while it has
// something to move; it is given back when the pump goes idle (no record in
// flight, no partial record, no unwritten plaintext). Given-back buffers go
// to a small process-wide cache (kPoolMax per size), so bulk transfers do
// not allocate per record. Backpressure: a source is not read while the
// previous output to its destination is not fully written, so at most one
// buffer is in use per direction.
//
// Man pages relied on: recv(2), send(2), shutdown(2), fcntl(2), fstat(2),
// socket(7) (SO_LINGER), epoll(7) (edge-triggered readiness).
#include "record_pump.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "errno_error.h"
#include "fd_flags.h"
#include "reactor.h"
#include "record_format.h"
#include "stream_args.h"
#include "typed_args.h"

namespace jumper {

namespace {

using namespace record;  // the wire format's constants and MakeNonce

constexpr size_t kReadAhead = 64 * 1024;
constexpr size_t kInCapacity = kMaxRecord + kReadAhead;
// Records JS sealed that lead the first send (the ORIGIN is ~32 bytes).
constexpr size_t kMaxSealedPending = 4096;
// Reads of the wire (at most kInCapacity each) after a failed send, looking
// for the peer's ABORT (WireSendFailed).
constexpr int kSalvageReads = 16;
// Buffers kept for reuse per size, process-wide (at most ~3 MiB in all).
constexpr size_t kPoolMax = 16;
constexpr int kPlain = 0;
constexpr int kWire = 1;

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

// A process-wide cache of same-size buffers, shared by the reactor threads.
// Never destroyed (detached reactor threads outlive static destructors).
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

struct PumpConfig {
  uint8_t send_key[kKeyBytes] = {};
  uint8_t recv_key[kKeyBytes] = {};
  uint64_t send_counter = 0;
  uint64_t recv_counter = 0;
  std::vector<uint8_t> sealed_pending;  // records JS sealed, not yet sent (the client's ORIGIN)
  std::vector<uint8_t> wire_pending;    // wire bytes read by JS, not yet opened
  std::vector<uint8_t> plain_pending;   // plaintext read by JS, not yet sealed
  std::vector<uint8_t> opened_pending;  // plaintext opened by JS, not yet written to plain
  bool recv_ended = false;              // JS already opened the peer's END

  ~PumpConfig() {
    OPENSSL_cleanse(send_key, sizeof send_key);
    OPENSSL_cleanse(recv_key, sizeof recv_key);
  }
};

// The body size of the records sealed here: whole TCP segments of the
// wire. A largest record (65537 bytes) on loopback (segments of 65483)
// left as a full segment plus a 54-byte one, each its own skb, wake-up and
// ACK at both ends; records of one segment move about 15-20 % more bytes
// per CPU second (docs/performance.md). The segment size is the MSS this
// end advertised (its route's MTU): TCP_MAXSEG reports the current MSS,
// which starts at half the peer's window (32741 on loopback). Not TCP (a
// Unix socket): the largest body.
size_t SealBodyFor(int wire_fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(wire_fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_advmss == 0) return kMaxBody;
  const size_t mss = info.tcpi_advmss;
  const size_t segments = kMaxRecord / mss;
  if (segments == 0) return kMaxBody;
  const size_t body = segments * mss - (kLenBytes + kTypeBytes + kTagBytes);
  // Half-size records would cost more per byte than a short tail segment.
  return body >= kMaxBody / 2 ? body : kMaxBody;
}

// The per-connection state machine; fds_[kPlain], fds_[kWire].
class Pump final : public Stream {
 public:
  Pump(int plain_fd, int wire_fd, std::unique_ptr<PumpConfig> config)
      : Stream(plain_fd, wire_fd), cfg_(std::move(config)) {}

  ~Pump() override {
    ReleaseUpBuffer();
    ReleaseInBuffer();
    if (send_ctx_ != nullptr) EVP_CIPHER_CTX_free(send_ctx_);
    if (recv_ctx_ != nullptr) EVP_CIPHER_CTX_free(recv_ctx_);
  }

  void Start() override { Setup(); }

  void OnEvents(int slot, uint32_t events) override {
    // A hang-up or error makes the next call on the fd report it.
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hup_[slot] = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_[slot] = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_[slot] = true;
  }

  bool Drive(int max_steps) override {
    for (int step = 0; step < max_steps; step++) {
      if (finished()) return false;
      bool moved = false;
      if (CanFlushUp()) {
        if (!FlushUp()) return false;
        moved = true;
      }
      if (CanFlushDown()) {
        if (!DownProgress()) return false;
        moved = true;
      }
      if (CanPumpUp()) {
        if (!PumpUp()) return false;
        moved = true;
      }
      if (CanReadWireNow()) {
        if (!ReadWire()) return false;
        moved = true;
      }
      if (up_done_ && down_done_) {
        Done();
        return false;
      }
      if (!moved) {
        ReleaseIdleBuffers();
        return false;
      }
    }
    // Out of steps: more only if a next step would move something (a new
    // stream's first step usually leaves nothing, and needs no reactor turn).
    if (CanFlushUp() || CanFlushDown() || CanPumpUp() || CanReadWireNow()) return true;
    ReleaseIdleBuffers();
    return false;
  }

  void Cancel(const std::string& reason) override {
    if (finished()) return;
    abort_text_ = SanitizeReason(reason.data(), reason.size());
    Fail("cancelled", reason, "local");
  }

  void Teardown() override {
    if (failed_) {
      const bool told = ciphers_ready_ && TrySendAbort();
      // The plain peer must not mistake a failure for a clean EOF: reset.
      ArmResetOnClose(fds_[kPlain]);
      // The tunnel peer gets a FIN after an ABORT it must read, else a reset
      // (as the JS path does): a wire failure is not a clean close either.
      if (!told) {
        ArmResetOnClose(fds_[kWire]);
        std::vector<uint8_t>().swap(result_.linger_pending);
      } else {
        // A close now would reset the connection as soon as the peer's next
        // bytes arrive, and drop the ABORT if it still waits behind earlier
        // records. So: FIN after the ABORT (JS sends it after the kept
        // bytes, if any), and JS keeps reading and dropping until the peer's
        // FIN (lingerFd, at most ABORT_LINGER_MS).
        if (result_.linger_pending.empty()) ::shutdown(fds_[kWire], SHUT_WR);
        result_.linger_fd = fds_[kWire];
      }
    }
    ::close(fds_[kPlain]);
    if (result_.linger_fd != fds_[kWire]) ::close(fds_[kWire]);
    ReleaseUpBuffer();
    ReleaseInBuffer();
    std::vector<uint8_t>().swap(cfg_->opened_pending);
    std::vector<uint8_t>().swap(cfg_->plain_pending);
  }

 private:
  // ------------------------------------------------------------ helpers --

  // An errno from a socket call on `side`: what the tunnel peer is told in
  // ABORT follows reasonOf() in src/errors.ts.
  bool FailErrno(int error, const char* side) {
    const std::string name = ErrnoName(error);
    if (error == ECONNRESET || error == EPIPE || error == ENOTCONN) {
      // The peer is told what is logged here (EPIPE: a reset another call saw first).
      abort_text_ = "peer_reset";
      return Fail("peer_reset", name, side);
    }
    // As reasonOf names it, so both data paths tell the peer the same word.
    abort_text_.clear();
    if (error == ETIMEDOUT) {
      abort_text_ = "timeout";
    } else {
      for (char c : name) abort_text_.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return Fail("io_error", name, side);
  }

  bool Setup() {
    if (!SetFdNonBlocking(fds_[kPlain], true)) return FailErrno(errno, "plain");
    if (!SetFdNonBlocking(fds_[kWire], true)) return FailErrno(errno, "wire");
    send_ctx_ = EVP_CIPHER_CTX_new();
    recv_ctx_ = EVP_CIPHER_CTX_new();
    if (send_ctx_ == nullptr || recv_ctx_ == nullptr ||
        EVP_CipherInit_ex(send_ctx_, EVP_chacha20_poly1305(), nullptr, cfg_->send_key, nullptr, 1) != 1 ||
        EVP_CipherInit_ex(recv_ctx_, EVP_chacha20_poly1305(), nullptr, cfg_->recv_key, nullptr, 0) != 1) {
      return Fail("io_error", "openssl_init", "local");
    }
    OPENSSL_cleanse(cfg_->send_key, sizeof cfg_->send_key);
    OPENSSL_cleanse(cfg_->recv_key, sizeof cfg_->recv_key);
    seal_body_ = SealBodyFor(fds_[kWire]);
    send_counter_ = cfg_->send_counter;
    recv_counter_ = cfg_->recv_counter;
    recv_ended_ = cfg_->recv_ended;
    ciphers_ready_ = true;
    // Try everything once: edge-triggered epoll only reports changes.
    for (int slot = 0; slot < kSlots; slot++) readable_[slot] = writable_[slot] = true;
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
    // Records JS sealed lead the first send, together with the first record
    // sealed here when plaintext is already waiting (PumpUp): one segment,
    // one wake-up of the peer, instead of two.
    if (!cfg_->sealed_pending.empty()) {
      if (!TakeUpBuffer()) return false;
      prefix_ = cfg_->sealed_pending.size();
      std::memcpy(up_buf_, cfg_->sealed_pending.data(), prefix_);
      std::vector<uint8_t>().swap(cfg_->sealed_pending);
    }
    // Work handed over by JS comes first, in stream order.
    if (!cfg_->opened_pending.empty()) {
      down_ptr_ = cfg_->opened_pending.data();
      down_len_ = cfg_->opened_pending.size();
    }
    return DownProgress();
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

  // Going idle: give back each buffer that holds nothing pending.
  void ReleaseIdleBuffers() {
    if (up_buf_ != nullptr && up_len_ == 0 && prefix_ == 0) ReleaseUpBuffer();
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
      const size_t want = up_len_ - up_off_;
      const ssize_t n = ::send(fds_[kWire], p + up_off_, want, MSG_NOSIGNAL);
      if (n > 0) {
        up_off_ += static_cast<size_t>(n);
        // A short write means the socket buffer is full: wait for EPOLLOUT.
        if (static_cast<size_t>(n) < want) {
          writable_[kWire] = false;
          return WantWritable(kWire);
        }
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        writable_[kWire] = false;
        return WantWritable(kWire);
      } else {
        return WireSendFailed(n < 0 ? errno : EPIPE);
      }
    }
    up_off_ = up_len_ = 0;
    if (end_sealed_ && !up_done_) {
      if (::shutdown(fds_[kWire], SHUT_WR) != 0 && errno != ENOTCONN) return WireSendFailed(errno);
      up_done_ = true;
    }
    return true;
  }

  // A send on the wire failed. A tunnel peer that ended the stream with an
  // ABORT and closed while we were still sending resets the connection, but
  // its ABORT stays readable in our receive queue: read that first, so the
  // failure carries the peer's reason (drain_timeout, peer_reset, ...), as
  // the JS path does (libuv reads before it writes). Bounded by kSalvageReads.
  // An EOF found this way is the reset itself, not a truncation: the errno
  // decides then (salvaging_).
  bool WireSendFailed(int error) {
    readable_[kWire] = true;
    salvaging_ = true;
    for (int i = 0; i < kSalvageReads && !finished() && CanReadWire() && readable_[kWire]; i++) {
      if (!ReadWire()) break;
    }
    salvaging_ = false;
    if (finished()) return false;
    return FailErrno(error, "wire");
  }

  bool CanReadPlain() const { return !end_sealed_ && up_len_ == 0; }
  bool CanFlushUp() const { return up_len_ > 0 && writable_[kWire]; }
  bool CanFlushDown() const { return down_len_ > 0 && writable_[kPlain]; }
  bool CanPumpUp() const { return CanReadPlain() && (readable_[kPlain] || PlainPendingLeft() > 0); }
  bool CanReadWireNow() const { return CanReadWire() && readable_[kWire]; }

  // One read of plaintext (or of what JS handed over), sealed, sent at once,
  // behind the records JS sealed (prefix_) on the first call.
  bool PumpUp() {
    if (!TakeUpBuffer()) return false;
    uint8_t* record = up_buf_ + prefix_;
    uint8_t* body = record + kLenBytes + kTypeBytes;
    const size_t room = seal_body_ - prefix_;
    size_t n;
    if (PlainPendingLeft() > 0) {
      n = std::min(PlainPendingLeft(), room);
      std::memcpy(body, cfg_->plain_pending.data() + plain_pending_off_, n);
      plain_pending_off_ += n;
      if (PlainPendingLeft() == 0) {
        std::vector<uint8_t>().swap(cfg_->plain_pending);
        plain_pending_off_ = 0;
      }
    } else {
      ssize_t r;
      do {
        r = ::recv(fds_[kPlain], body, room, 0);
      } while (r < 0 && errno == EINTR);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          readable_[kPlain] = false;
          // Nothing to go with the records JS sealed: they leave alone, now
          // (the ORIGIN must not wait for a consumer that waits for a reply).
          if (prefix_ > 0) return SendPrefixAlone();
          return true;
        }
        return FailErrno(errno, "plain");
      }
      if (r == 0) {
        end_sealed_ = true;
        return SealBehindPrefix(kTypeEnd, 0) && FlushUp();
      }
      n = static_cast<size_t>(r);
      // A short read emptied the socket; new data (or a FIN) raises a new
      // edge. Unless a hang-up was already reported: read on to see it.
      if (n < room && !hup_[kPlain]) readable_[kPlain] = false;
    }
    result_.bytes_up += n;
    if (!SealBehindPrefix(kTypeData, n)) return false;
    return writable_[kWire] ? FlushUp() : true;
  }

  // Seal a record behind the prefix; the pending send is then both.
  bool SealBehindPrefix(uint8_t type, size_t n) {
    if (!Seal(up_buf_ + prefix_, type, n)) return false;
    up_len_ += prefix_;
    prefix_ = 0;
    return true;
  }

  // The records JS sealed become the pending send on their own.
  bool SendPrefixAlone() {
    up_off_ = 0;
    up_len_ = prefix_;
    prefix_ = 0;
    return writable_[kWire] ? FlushUp() : true;
  }

  // ------------------------------------------------- wire -> plain (open) --

  bool FlushDown() {
    while (down_len_ > 0) {
      const ssize_t n = ::send(fds_[kPlain], down_ptr_, down_len_, MSG_NOSIGNAL);
      if (n > 0) {
        down_ptr_ += n;
        down_len_ -= static_cast<size_t>(n);
        result_.bytes_down += static_cast<uint64_t>(n);
        if (down_len_ > 0) {
          writable_[kPlain] = false;
          return WantWritable(kPlain);
        }
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        writable_[kPlain] = false;
        return WantWritable(kPlain);
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
    if (::shutdown(fds_[kPlain], SHUT_WR) != 0 && errno != ENOTCONN) return FailErrno(errno, "plain");
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
    while (down_len_ == 0 && !finished()) {
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
          if (writable_[kPlain] && !FlushDown()) return false;
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
    const size_t space = in_cap_ - in_end_;
    ssize_t r;
    do {
      r = ::recv(fds_[kWire], in_buf_ + in_end_, space, 0);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
      in_end_ += static_cast<size_t>(r);
      // See PumpUp: a short read emptied the socket.
      if (static_cast<size_t>(r) < space && !hup_[kWire]) readable_[kWire] = false;
      return ProcessIn();
    }
    if (r == 0) {
      wire_eof_ = true;
      if (!recv_ended_ && !salvaging_) {
        return Fail("truncated",
                    in_end_ > in_start_ ? "stream cut inside a record" : "stream cut without the end-of-stream record",
                    "wire");
      }
      return true;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_[kWire] = false;
      return true;
    }
    return FailErrno(errno, "wire");
  }

  // Never blocks: finish the record in flight, then ABORT. What the kernel
  // will not take now (a full send queue towards a slow reader) is kept in
  // result_.linger_pending for JS to write: dropping it would turn the ABORT
  // into a bare reset. Whether the ABORT was sent or kept.
  bool TrySendAbort() {
    if (abort_text_.empty() || end_sealed_ || result_.side == "wire") return false;
    // Records JS sealed and never sent (the ORIGIN) go first: the ABORT's
    // counter follows theirs.
    if (prefix_ > 0) {
      up_off_ = 0;
      up_len_ = prefix_;
      prefix_ = 0;
    }
    std::vector<uint8_t>& kept = result_.linger_pending;
    if (!SendOrKeep(up_buf_ + up_off_, up_len_ - up_off_, kept)) return false;
    up_off_ = up_len_ = 0;
    // Small enough for the stack: the up buffer may have been given back.
    uint8_t record[kLenBytes + kTypeBytes + kMaxAbortReason + kTagBytes];
    const size_t n = std::min(abort_text_.size(), kMaxAbortReason);
    std::memcpy(record + kLenBytes + kTypeBytes, abort_text_.data(), n);
    end_sealed_ = true;
    // Seal's own failure paths only matter before Teardown; here it just
    // must not send a record it could not seal.
    if (send_counter_ >= kMaxNonce) return false;
    if (!Seal(record, kTypeAbort, n)) return false;
    const size_t len = up_len_;
    up_len_ = 0;
    return SendOrKeep(record, len, kept);
  }

  // Send to the wire without blocking; the part the kernel does not take
  // (and everything once something is kept, to keep the order) is appended
  // to `kept`. False on an error other than a full send queue.
  bool SendOrKeep(const uint8_t* p, size_t n, std::vector<uint8_t>& kept) {
    while (n > 0 && kept.empty()) {
      const ssize_t sent = ::send(fds_[kWire], p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      p += sent;
      n -= static_cast<size_t>(sent);
    }
    kept.insert(kept.end(), p, p + n);
    return true;
  }

  std::unique_ptr<PumpConfig> cfg_;
  std::string abort_text_;  // what the tunnel peer is told on a non-wire failure
  bool salvaging_ = false;  // WireSendFailed is reading what the peer left

  EVP_CIPHER_CTX* send_ctx_ = nullptr;
  EVP_CIPHER_CTX* recv_ctx_ = nullptr;
  uint64_t send_counter_ = 0;
  uint64_t recv_counter_ = 0;

  bool ciphers_ready_ = false;  // both contexts keyed (an ABORT can be sealed)

  // Edge-triggered readiness per fd: set by events, cleared on EAGAIN (a
  // write that stops short also asks for EPOLLOUT: WantWritable).
  bool readable_[kSlots] = {false, false};
  bool writable_[kSlots] = {false, false};
  bool hup_[kSlots] = {false, false};  // peer hung up or error reported: read to the end

  // plain -> wire
  uint8_t* up_buf_ = nullptr;  // from SealPool(), held only while in use
  size_t seal_body_ = kMaxBody;  // SealBodyFor(the wire): the first record's includes prefix_
  size_t prefix_ = 0;          // bytes of records JS sealed at up_buf_'s start, not yet pending
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

uint64_t CounterField(Napi::Env env, const Napi::Object& opts, const char* name) {
  return static_cast<uint64_t>(WholeNumberValue(env, opts.Get(name), name, 0, static_cast<double>(kMaxNonce)));
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

}  // namespace

// startPump({ plainFd, wireFd, sendKey, recvKey, sendCounter, recvCounter,
//             sealedPending?, wirePending?, plainPending?, openedPending?, recvEnded?, onDone })
// Throws (TypeError/RangeError/Error) without taking the fds; once it
// returns, the fds belong to the pump.
Napi::Value StartPumpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsObject()) ThrowType(env, "startPump expects one options object");
  const Napi::Object opts = info[0].As<Napi::Object>();
  auto cfg = std::make_unique<PumpConfig>();
  const int plain_fd = SocketFdField(env, opts, "plainFd");
  const int wire_fd = SocketFdField(env, opts, "wireFd");
  if (plain_fd == wire_fd) ThrowType(env, "plainFd and wireFd must differ");
  KeyField(env, opts, "sendKey", cfg->send_key);
  KeyField(env, opts, "recvKey", cfg->recv_key);
  cfg->send_counter = CounterField(env, opts, "sendCounter");
  cfg->recv_counter = CounterField(env, opts, "recvCounter");
  cfg->sealed_pending = BytesField(env, opts, "sealedPending");
  // Room must remain for a record behind them in one sealing buffer.
  if (cfg->sealed_pending.size() > kMaxSealedPending) {
    throw Napi::RangeError::New(env, "sealedPending must be at most 4096 bytes");
  }
  cfg->wire_pending = BytesField(env, opts, "wirePending");
  cfg->plain_pending = BytesField(env, opts, "plainPending");
  cfg->opened_pending = BytesField(env, opts, "openedPending");
  const Napi::Value ended = opts.Get("recvEnded");
  if (!ended.IsUndefined() && !ended.IsBoolean()) ThrowType(env, "recvEnded must be a boolean");
  cfg->recv_ended = ended.IsBoolean() && ended.As<Napi::Boolean>().Value();
  const Napi::Value on_done = opts.Get("onDone");
  if (!on_done.IsFunction()) ThrowType(env, "onDone must be a function");
  return StartStream(env, std::make_unique<Pump>(plain_fd, wire_fd, std::move(cfg)), on_done.As<Napi::Function>());
}

// cancelPump(handle, reason): idempotent; a finished pump ignores it.
Napi::Value CancelPumpJs(const Napi::CallbackInfo& info) { return CancelStreamJs(info); }

// dupFd(fd): a close-on-exec duplicate (shares the socket's open file description).
Napi::Value DupFdJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = ::fcntl(FdArg(info, 0, "fd"), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw MakeErrnoError(env, errno, "fcntl", "dupFd");
  return Napi::Number::New(env, fd);
}

}  // namespace jumper
