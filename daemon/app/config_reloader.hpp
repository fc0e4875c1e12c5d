// Configuration reloads off the event loop. SIGHUP asks for a reload; a worker thread reads
// and validates the file (which may take a while for a large one), and the event loop
// thread applies the result, so the loop keeps draining the ring buffer and sweeping
// timeouts meanwhile and /healthz never sees it stall. Requests made while a reload runs
// are coalesced into one more reload after it, which reads the file as it is by then.
#pragma once

#include "app/effective_config.hpp"
#include "os/event_loop.hpp"
#include "os/result.hpp"
#include "os/unique_fd.hpp"

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace flowlat {

class ConfigReloader {
public:
    using Load = std::function<EffectiveConfig()>; // on the worker thread
    // On the event loop thread. `another_follows`: a request came in during this load, and
    // a new load starts right after this call.
    using Apply = std::function<void(EffectiveConfig loaded, bool another_follows)>;

    // Starts the worker (which inherits the caller's signal mask: create it after
    // EventLoop::on_signals) and watches its completions on `loop`.
    static Result<std::unique_ptr<ConfigReloader>> start(EventLoop& loop, Load load, Apply apply);
    // Waits for a load in progress to end; the parser's limits bound it (config/yaml_parser.hpp).
    ~ConfigReloader();
    ConfigReloader(const ConfigReloader&) = delete;
    ConfigReloader& operator=(const ConfigReloader&) = delete;

    // On the event loop thread: starts a load, or when one runs, asks for one more after it.
    // Returns false when the request was coalesced into a pending reload.
    bool request();
    bool running() const { return running_; } // event loop thread

private:
    ConfigReloader(Load load, Apply apply, UniqueFd done);
    void work();      // the worker thread
    void finished();  // the event loop thread, when `done_` is readable

    Load load_;
    Apply apply_;
    UniqueFd done_; // eventfd: the worker's "a result is ready"

    std::mutex mutex_; // guards the next three
    std::condition_variable wake_;
    bool load_requested_{false};
    bool stopping_{false};
    std::optional<EffectiveConfig> result_;

    bool running_{false}; // event loop thread only: a load was started and not yet applied
    bool pending_{false}; // event loop thread only: one more load after it
    std::thread worker_;
};

} // namespace flowlat
