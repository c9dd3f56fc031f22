// dgram.dtls.event_client: ClientLoop, an epoll loop for programs that have none of their own.
module;
#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <system_error>
#include <vector>
module dgram.dtls.event_client;

namespace dgram::dtls {

ClientLoop::ClientLoop(std::error_code& ec) : epoll_{::epoll_create1(EPOLL_CLOEXEC)} {
  ec.clear();
  if (!epoll_) ec = {errno, std::system_category()};
}

ClientLoop::~ClientLoop() = default;

void ClientLoop::add(EventClient& client, std::error_code& ec) {
  ec.clear();
  epoll_event event{EPOLLIN, {.ptr = &client}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, client.descriptor(), &event) != 0) {
    ec = {errno, std::system_category()};
    return;
  }
  clients_.push_back(&client);
}

void ClientLoop::remove(EventClient& client) noexcept {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, client.descriptor(), nullptr);
  std::erase(clients_, &client);
}

std::size_t ClientLoop::run_once(Deadline deadline, std::error_code& ec) {
  ec.clear();
  // A scan for the earliest deadline: clients are few per loop in the programs this serves (a server keeps
  // its timers in a heap instead).
  Deadline wake = deadline;
  for (const EventClient* client : clients_) wake = wake.min(client->next_deadline());
  std::array<epoll_event, 256> events;   // more ready clients wait for the next call
  const int ready = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                                 wake.poll_timeout_ms(Clock::now()));
  if (ready < 0) {
    if (errno != EINTR) ec = {errno, std::system_category()};
    return 0;
  }
  std::size_t serviced = 0;
  std::error_code client_error;   // kept in the client: state() and failure() say it
  for (int i = 0; i < ready; ++i) {
    static_cast<EventClient*>(events[static_cast<std::size_t>(i)].data.ptr)->on_readable(client_error);
    ++serviced;
  }
  const TimePoint now = Clock::now();
  for (EventClient* client : clients_) {
    if (!client->next_deadline().passed(now)) continue;
    client->on_deadline(client_error);
    ++serviced;
  }
  return serviced;
}

}  // namespace dgram::dtls
