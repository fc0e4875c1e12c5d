#include "app/daemon_mode.hpp"
#include "app/config_reloader.hpp"
#include "os/clock.hpp"

#include "os/abstract_lock.hpp"
#include "os/capabilities.hpp"
#include "aggregate/aggregator.hpp"
#include "export/http_server.hpp"
#include "export/web_config.hpp"
#include "aggregate/label_policy.hpp"
#include "os/link_watcher.hpp"
#include "os/logging.hpp"
#include "export/metrics_exposition.hpp"
#include "export/process_metrics.hpp"
#include "export/status_page.hpp"
#include "os/signal_policy.hpp"
#include "app/cgroup_paths.hpp"
#include "app/startup.hpp"
#include "probe/hook_healer.hpp"
#include "os/systemd_notify.hpp"
#include "os/systemd_sockets.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>

#ifndef FLOWLAT_VERSION
#define FLOWLAT_VERSION "0.0.0"
#endif
#ifndef FLOWLAT_REVISION
#define FLOWLAT_REVISION "unknown"
#endif

namespace flowlat {

namespace {

double unix_now_seconds()
{
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

probe::ProbeOptions probe_options_from(const config::Config& config)
{
    probe::ProbeOptions options;
    options.flow_table_size = config.flow_table_size;
    options.ring_buffer_size = config.ring_buffer_size;
    options.handshake_timeout_ns = static_cast<std::uint64_t>(config.handshake_timeout.count()) * 1'000'000;
    // Batch wakeups: the reader also drains every 100 ms, so a quiet host costs no wakeup per event.
    options.ring_wakeup_bytes = std::min<std::uint32_t>(config.ring_buffer_size / 8, 64u * 1024u);
    return options;
}


class Daemon {
public:
    Daemon(cli::Options options, config::Config config)
        : options_(std::move(options)), config_(std::move(config)),
          aggregator_(labels::LabelPolicy(config_), aggregation::Settings::from(config_))
    {
    }

    int run();

private:
    Status start_timers();
    void reconcile_interfaces();
    void check_attachments();
    void reload_requested();
    void apply_reload(EffectiveConfig loaded, bool another_follows);
    Status start_http(const std::vector<std::string>& addresses);
    void refresh_status();
    void write_metrics(const http::BodyWriter& write, exposition::Format format);
    http::Health health() const;
    http::LandingInfo landing() const;
    exposition::OperationalSnapshot operational_snapshot() const;
    std::string status_page(std::string_view query) const;
    std::string status_line() const;
    void use_cgroup_paths();
    void name_cgroups(std::span<const HandshakeEvent> batch);

    cli::Options options_;
    config::Config config_;
    aggregation::Aggregator aggregator_;
    labels::InterfaceNames interface_names_;
    // Held (exclusively) while an interface's name and its series move together, and (shared)
    // while a scrape copies both, so a scrape never sees one without the other.
    mutable std::shared_mutex topology_mutex_;
    UniqueFd instance_lock_; // one daemon per network namespace: "@flowlatd/daemon"
    std::unique_ptr<EventLoop> loop_;
    std::unique_ptr<ConfigReloader> reloader_; // after loop_: its worker ends before the loop goes
    std::unique_ptr<probe::ProbeSession> session_;
    std::unique_ptr<interfaces::LinkWatcher> links_;
    std::unique_ptr<http::HttpServer> http_;
    // --web.systemd-socket: held for the process's life; every start of the server (reloads
    // restart it) adopts duplicates, so systemd's sockets are never closed under it.
    std::vector<systemd::ListenSocket> systemd_sockets_;
    web::WebConfig web_; // --web.config.file as last loaded
    std::unique_ptr<probe::HookHealer> healer_; // the wanted interfaces whose hooks are down
    std::set<std::string> missing_names_;              // configured names that do not exist now
    // Names the workload label's cgroup ids; created once a configuration asks for the label.
    std::unique_ptr<CgroupPathSource> cgroup_paths_;

    // Read by HTTP worker threads; written by the event loop thread.
    mutable std::mutex status_mutex_;
    // Every interface wanted now: glob matches that exist, and configured names whether they exist
    // or not. One that is no longer wanted (vanished glob match, removed from the config, no
    // longer the default route's) leaves the gauge: a permanent 0 would page for nothing.
    std::map<std::string, bool> probe_attached_;
    std::vector<std::string> unhealthy_;         // why /healthz says 503
    std::uint64_t flow_table_entries_{0};
    cgroup::ResolverStats cgroup_stats_;
    bool reload_ok_{true};
    double reload_success_timestamp_{0};
    // For the status page (GET /), also written by the event loop thread.
    std::string config_source_;
    std::size_t max_series_{0};
    std::vector<status::InterfaceState> interface_states_;
    const std::uint64_t started_ns_{clock::monotonic_ns()};
    status::History history_; // recent latency per series, sampled on the event loop
};

int Daemon::run()
{
    auto loop = EventLoop::create();
    if (!loop) {
        startup::report(startup::cannot(loop.error()));
        return 2;
    }
    loop_ = std::move(loop).value();
    // Before any thread exists: it unsets LISTEN_* in the environment.
    if (options_.web_systemd_socket) {
        auto sockets = systemd::take_listen_sockets();
        if (!sockets) {
            startup::report(sockets.error());
            return 2;
        }
        systemd_sockets_ = std::move(sockets).value();
        for (const auto& socket : systemd_sockets_)
            spdlog::info("--web.systemd-socket: fd {} ({}) listens on {}; web.listen_addresses is not used",
                         socket.fd.get(), socket.name, socket.address);
    }
    // Before any thread exists (civetweb's workers), so that every thread inherits the mask.
    signal_policy::ignore_broken_pipes();
    Status signals = loop_->on_signals(signal_policy::handled_signals(), [this](int signal) {
        using signal_policy::Action;
        switch (signal_policy::action_for(signal_policy::Mode::daemon, signal)) {
        case Action::reload: reload_requested(); return;
        case Action::stop:
            spdlog::info("received {}, shutting down", signal_policy::signal_name(signal));
            loop_->stop();
            return;
        case Action::ignore:
            spdlog::warn("received {}, ignored (HUP reloads; INT, TERM or QUIT stop)",
                         signal_policy::signal_name(signal));
            return;
        }
    });
    if (!signals) {
        startup::report(startup::cannot(signals.error()));
        return 2;
    }
    // After on_signals: the worker inherits the mask, so SIGHUP always reaches the signalfd.
    auto reloader = ConfigReloader::start(
        *loop_, [options = options_] { return load_effective_config(options); },
        [this](EffectiveConfig loaded, bool another_follows) { apply_reload(std::move(loaded), another_follows); });
    if (!reloader) {
        startup::report(startup::cannot(reloader.error()));
        return 2;
    }
    reloader_ = std::move(reloader).value();

    // Two daemons in one network namespace would count every handshake twice and fight over
    // the listener; the second refuses at once (a --print beside the daemon is fine).
    auto instance = take_abstract_lock("flowlatd/daemon");
    if (!instance) {
        startup::report(instance.error().errno_value == EBUSY
                            ? Error{"another flowlatd daemon runs in this network namespace (it holds "
                                    "@flowlatd/daemon; `ss -xap | grep flowlatd/daemon` shows it)"}
                            : Error{"cannot take the daemon lock: " + instance.error().message()});
        return 2;
    }
    instance_lock_ = std::move(instance).value();

    auto session = startup::load_probe(probe_options_from(config_), *loop_,
                                       [this](std::span<const HandshakeEvent> batch) {
                                           name_cgroups(batch);
                                           aggregator_.add(batch);
                                       });
    if (!session) {
        startup::report(session.error());
        return 2;
    }
    session_ = std::move(session).value();
    healer_ = std::make_unique<probe::HookHealer>(*session_);
    if (config_.workload != config::WorkloadMode::none) use_cgroup_paths();

    auto links = interfaces::LinkWatcher::open();
    if (!links) {
        startup::report(startup::cannot(links.error()));
        return 2;
    }
    links_ = std::move(links).value();
    Status watched = loop_->watch(links_->fd(), [this] {
        if (links_->drain()) reconcile_interfaces();
    });
    if (!watched) {
        startup::report(startup::cannot(watched.error()));
        return 2;
    }
    reconcile_interfaces();
    {
        // Before the HTTP workers exist: a scrape must never see the timestamp unset.
        std::lock_guard lock(status_mutex_);
        reload_success_timestamp_ = unix_now_seconds();
        config_source_ = config_.source;
        max_series_ = config_.max_series;
    }

    // Attached, and no other thread yet: only healing and reloads need privileges from now on.
    if (auto kept = capabilities::keep_only(capabilities::kept_after_attach()); kept)
        spdlog::info("capabilities kept: {}", capabilities::names(kept.value().effective));
    else
        spdlog::warn("cannot drop capabilities: {}", kept.error().message());

    if (options_.web_config_file) {
        auto web = web::load_web_config(*options_.web_config_file);
        if (!web.config) {
            for (const auto& error : web.errors) spdlog::error("{}", error);
            startup::report(Error{"flowlatd: invalid web configuration, not starting"});
            return 1;
        }
        web_ = std::move(*web.config);
    }
    if (Status http = start_http(config_.listen_addresses); !http) {
        startup::report(startup::cannot(http.error()));
        // An inherited socket that cannot be served will not become servable by retrying.
        if (!systemd_sockets_.empty()) return 2;
        return 75; // EX_TEMPFAIL: the port may be free in a moment; the unit retries 75, not 1 or 2
    }
    // A timer that is not armed is a job that never runs: without the watchdog's, systemd
    // would kill a healthy daemon; start-up fails instead.
    if (Status timers = start_timers(); !timers) {
        startup::report(startup::cannot(timers.error()));
        return 2;
    }

    refresh_status();
    spdlog::info("ready: {}", status_line());
    systemd::ready(status_line());
    const Status ran = loop_->run();

    systemd::stopping();
    reloader_.reset(); // waits for a reload in progress, whose result is dropped
    session_->flush();
    session_->detach_all();
    http_.reset();
    if (!ran) {
        startup::report_internal(ran.error());
        return 3;
    }
    spdlog::info("stopped");
    return 0;
}

void Daemon::use_cgroup_paths()
{
    if (cgroup_paths_) return;
    cgroup_paths_ = std::make_unique<CgroupPathSource>();
    cgroup_paths_->open();
    aggregator_.set_cgroup_paths(cgroup_paths_.get());
}

// Names a batch's new cgroup ids before aggregator_.add() takes the lock that scrapes wait
// on: a miss walks the cgroup2 tree (at most once a second), and the aggregator's own
// lookup then finds the path, or the walk's verdict, without walking again.
void Daemon::name_cgroups(std::span<const HandshakeEvent> batch)
{
    if (!cgroup_paths_ || config_.workload == config::WorkloadMode::none) return;
    std::uint64_t previous = 0;
    for (const auto& event : batch) {
        if (event.cgroup_id == 0 || event.cgroup_id == previous) continue;
        previous = event.cgroup_id;
        cgroup_paths_->prefetch(event.cgroup_id);
    }
}

Status Daemon::start_timers()
{
    if (Status s = loop_->every(std::chrono::seconds(1), [this] { refresh_status(); }); !s) return s;
    if (Status s = loop_->every(std::chrono::seconds(10), [this] { aggregator_.expire(clock::monotonic_ns()); }); !s)
        return s;
    if (Status s = loop_->every(probe::attachment_check_interval, [this] { check_attachments(); }); !s) return s;
    // The status page's sparklines and rates: one interval per tick, kIntervals kept. The
    // first record, now, starts the first interval, so the handshakes of the first few
    // seconds count in it.
    auto record_history = [this] {
        std::shared_lock topology(topology_mutex_);
        const aggregation::Snapshot series = aggregator_.snapshot(aggregation::Aggregator::Detail::counts);
        topology.unlock();
        history_.record(series, static_cast<double>(clock::monotonic_ns()) / 1e9);
    };
    record_history();
    if (Status s = loop_->every(std::chrono::seconds(5), record_history); !s) return s;
    // Forgets removed cgroups; the next expire() drops what the aggregator derived from them.
    if (Status s = loop_->every(std::chrono::seconds(60), [this] { if (cgroup_paths_) cgroup_paths_->refresh(); });
        !s)
        return s;
    if (auto interval = systemd::watchdog_interval()) {
        Status armed = loop_->every(*interval, [] { systemd::watchdog_ping(); });
        if (!armed) return Error{"start the systemd watchdog: " + armed.error().what, armed.error().errno_value};
    }
    return Ok{};
}

// An administrator or another tool may remove our clsact filter (or the whole clsact qdisc), or
// detach a TCX link; the probe then measures nothing. Re-attach it, so it heals without operator
// action; while that fails (e.g. a foreign program now holds our slot), probe_attached is 0 and
// /healthz says why. Interfaces whose attach failed earlier are retried on the same cadence.
void Daemon::check_attachments()
{
    for (const auto& name : session_->drop_lost_attachments()) healer_->lost(name);
    if (!healer_->all_up()) reconcile_interfaces();
}

void Daemon::reconcile_interfaces()
{
    std::vector<std::string> patterns = config_.interfaces;
    if (patterns.empty()) patterns = interfaces::default_route_interfaces();
    const auto present = interfaces::list_all();
    const auto wanted = interfaces::match(patterns, present);

    for (const auto& current : session_->attached_interfaces()) {
        const bool still_wanted = std::find(wanted.begin(), wanted.end(), current) != wanted.end();
        if (!still_wanted) session_->detach(current.name);
    }
    std::vector<std::string> unhealthy;
    std::map<std::string, bool> states;
    std::vector<std::string> wanted_names;
    for (const auto& interface : wanted) {
        wanted_names.push_back(interface.name);
        const Status attached = healer_->attach(interface.name, present);
        if (!attached) {
            unhealthy.push_back(interface.name + ": " + attached.error().message());
        } else {
            std::unique_lock topology(topology_mutex_);
            for (const auto& move : interface_names_.set(interface.ifindex, interface.name))
                aggregator_.move_interface(move.from, move.to, move.redirect);
        }
        states[interface.name] = static_cast<bool>(attached);
    }
    std::set<std::string> missing;
    for (const auto& pattern : patterns) {
        if (interfaces::is_glob(pattern) || states.count(pattern) != 0) continue;
        unhealthy.push_back(pattern + ": no such interface");
        states[pattern] = false;
        // Logged when it goes missing, not at every reconcile: a typo must show in the journal.
        if (missing_names_.count(pattern) == 0)
            spdlog::warn("{}: configured interface does not exist; it is attached when it appears", pattern);
        missing.insert(pattern);
    }
    missing_names_ = std::move(missing);
    if (wanted.empty() && unhealthy.empty()) unhealthy.push_back("no interface matches the configured patterns");
    healer_->keep_only(wanted_names);

    std::vector<status::InterfaceState> interface_states;
    const auto down = healer_->down();
    for (const auto& [name, attached] : states) {
        status::InterfaceState state{name, attached, "", false, ""};
        if (auto mode = session_->attach_mode(name)) state.mode = std::string(probe::to_string(*mode));
        state.healing = std::find(down.begin(), down.end(), name) != down.end();
        for (const auto& why : unhealthy)
            if (why.rfind(name + ": ", 0) == 0) state.problem = why.substr(name.size() + 2);
        interface_states.push_back(std::move(state));
    }

    std::lock_guard lock(status_mutex_);
    probe_attached_ = std::move(states);
    unhealthy_ = std::move(unhealthy);
    interface_states_ = std::move(interface_states);
}

Status Daemon::start_http(const std::vector<std::string>& addresses)
{
    http::ServerOptions options;
    options.listen_addresses = addresses;
    for (const auto& socket : systemd_sockets_) options.inherited_fds.push_back(socket.fd.get());
    options.telemetry_path = options_.telemetry_path;
    options.max_requests = options_.max_requests;
    options.web = web_;
    options.metrics = [this](const http::BodyWriter& write, exposition::Format format) { write_metrics(write, format); };
    options.health = [this] { return health(); };
    options.landing = [this] { return landing(); };
    options.status_page = [this](std::string_view query) { return status_page(query); };
    auto server = http::HttpServer::start(std::move(options));
    if (!server) return server.error();
    http_ = std::move(server).value();
    std::string ports;
    for (auto port : http_->ports()) ports += (ports.empty() ? "" : ", ") + std::to_string(port);
    spdlog::info("serving /metrics on port(s) {}", ports);
    return Ok{};
}

// On SIGHUP: the file is read and validated on the reloader's thread; apply_reload() swaps it
// in on this one. RELOADING=1 now, READY=1 once no reload is left to run.
void Daemon::reload_requested()
{
    systemd::reloading();
    if (reloader_->request())
        spdlog::info("SIGHUP: reloading the configuration");
    else
        spdlog::info("SIGHUP: a reload is in progress; the configuration is read again after it");
}

void Daemon::apply_reload(EffectiveConfig loaded, bool another_follows)
{
    auto fail = [&](const std::string& why) {
        spdlog::error("reload failed, the previous configuration stays in effect: {}", why);
        {
            std::lock_guard lock(status_mutex_);
            reload_ok_ = false;
        }
        if (!another_follows) systemd::ready(status_line());
    };
    // Without --config.file, a missing default file means the embedded default at start-up. Once
    // the daemon runs on that file, its disappearance (a package upgrade in progress, config
    // management) must not silently move the listener and the probes to the embedded default.
    if (!options_.config_file && config_.source == cli::default_config_file && loaded.config &&
        loaded.config->source != cli::default_config_file) {
        fail(std::string(cli::default_config_file) + " no longer exists (restart flowlatd to run on the embedded default)");
        return;
    }
    if (!loaded.config) {
        for (const auto& diagnostic : loaded.diagnostics) spdlog::error("{}", diagnostic.to_string());
        fail(std::to_string(loaded.diagnostics.size()) + " configuration error(s)");
        return;
    }
    config::Config next = std::move(*loaded.config);
    labels::LabelPolicy next_policy(next);
    if (auto problem = aggregator_.policy_problem(next_policy)) {
        fail(*problem);
        return;
    }

    // The web config is re-read at every reload, and the listener restarted with it, so that
    // renewed certificate files take effect; a bad file keeps the old one.
    std::optional<web::WebConfig> next_web;
    if (options_.web_config_file) {
        auto web = web::load_web_config(*options_.web_config_file);
        if (!web.config) {
            for (const auto& error : web.errors) spdlog::error("{}", error);
            fail(std::to_string(web.errors.size()) + " web configuration error(s)");
            return;
        }
        next_web = std::move(web.config);
    }
    // The listener is the one part that can fail to apply, so it goes first.
    const bool addresses_differ = next.listen_addresses != config_.listen_addresses;
    if (addresses_differ && !systemd_sockets_.empty())
        spdlog::warn("web.listen_addresses changed but is not used: --web.systemd-socket serves on systemd's sockets");
    if ((addresses_differ && systemd_sockets_.empty()) || next_web) {
        const web::WebConfig previous_web = web_;
        if (next_web) web_ = std::move(*next_web);
        http_.reset();
        if (Status started = start_http(next.listen_addresses); !started) {
            const std::string why = started.error().message();
            web_ = previous_web;
            if (Status restored = start_http(config_.listen_addresses); !restored)
                spdlog::critical("cannot restore the previous listener: {}", restored.error().message());
            fail(why);
            return;
        }
    }
    if (next.flow_table_size != config_.flow_table_size || next.ring_buffer_size != config_.ring_buffer_size ||
        next.handshake_timeout != config_.handshake_timeout)
        spdlog::warn("flow_table_size, ring_buffer_size and handshake_timeout take effect after a restart");

    logging::set_level(next.log_level);
    if (auto format = logging::parse_format(next.log_format)) logging::set_format(*format);
    if (next.workload != config::WorkloadMode::none) use_cgroup_paths();
    aggregator_.set_policy(std::move(next_policy));
    for (const auto& warning : aggregator_.set_settings(aggregation::Settings::from(next)))
        spdlog::warn("{}", warning);
    config_ = std::move(next);
    reconcile_interfaces();
    {
        std::lock_guard lock(status_mutex_);
        reload_ok_ = true;
        reload_success_timestamp_ = unix_now_seconds();
        config_source_ = config_.source;
        max_series_ = config_.max_series;
    }
    spdlog::info("configuration reloaded from {}", config_.source);
    if (!another_follows) systemd::ready(status_line());
}

void Daemon::refresh_status()
{
    const std::uint64_t entries = session_->flow_table_entries();
    const cgroup::ResolverStats cgroups = cgroup_paths_ ? cgroup_paths_->stats() : cgroup::ResolverStats{};
    {
        std::lock_guard lock(status_mutex_);
        flow_table_entries_ = entries;
        cgroup_stats_ = cgroups;
    }
    systemd::status(status_line());
}

void Daemon::write_metrics(const http::BodyWriter& write, exposition::Format format)
{
    const exposition::OperationalSnapshot operational = operational_snapshot();
    auto process = process::read_process_metrics();
    std::optional<process::ProcessMetrics> process_metrics;
    if (process) process_metrics = process.value();
    // Series and names from the same instant: a rename between the two copies would label one
    // scrape's counts with the wrong interface, and the next scrape would show them drop.
    std::shared_lock topology(topology_mutex_);
    const aggregation::Snapshot series = aggregator_.snapshot(exposition::snapshot_detail(format));
    const labels::InterfaceNames names(interface_names_.copy());
    topology.unlock();
    exposition::stream_metrics(write, format, series, names, operational, process_metrics);
}

std::string Daemon::status_page(std::string_view query) const
{
    status::PageInfo info;
    info.version = std::string(FLOWLAT_VERSION) + " (" + FLOWLAT_REVISION + ")";
    info.uptime_seconds = static_cast<double>(clock::monotonic_ns() - started_ns_) / 1e9;
    info.now_unix_seconds = unix_now_seconds();
    const http::Health healthy = health();
    info.health = healthy.ok ? "ok" : healthy.reason;
    info.operational = operational_snapshot();
    info.telemetry_path = options_.telemetry_path;
    {
        std::lock_guard lock(status_mutex_);
        info.config_file = config_source_;
        info.max_series = max_series_;
        info.interfaces = interface_states_;
    }
    std::shared_lock topology(topology_mutex_);
    const aggregation::Snapshot series = aggregator_.snapshot(aggregation::Aggregator::Detail::counts);
    const auto names = interface_names_.copy();
    topology.unlock();
    return status::render_page(info, series, names, history_.copy(), status::parse_query(query));
}

exposition::OperationalSnapshot Daemon::operational_snapshot() const
{
    exposition::OperationalSnapshot operational;
    const probe::ProbeCounters counters = session_->probe().read_counters();
    operational.events_lost = counters.events_lost;
    operational.events_malformed = session_->ring_records_malformed();
    operational.flow_table_full = counters.flow_table_full;
    operational.packets_malformed = counters.packets_malformed;
    operational.handshakes_abandoned = counters.handshakes_abandoned;
    operational.handshakes_aborted = counters.handshakes_aborted;
    operational.answers_rejected = counters.answers_rejected;
    operational.flow_table_evictions = session_->flow_table_evictions();
    operational.flow_table_size = session_->probe().options().flow_table_size;
    operational.build = {FLOWLAT_VERSION, FLOWLAT_REVISION, probe::libbpf_version()};
    {
        std::lock_guard lock(status_mutex_);
        operational.flow_table_entries = flow_table_entries_;
        operational.workload_unresolved = cgroup_stats_.unresolved;
        operational.cgroup_walks = cgroup_stats_.walks;
        for (const auto& [name, attached] : probe_attached_) operational.probes.push_back({name, attached});
        operational.config_reload_ok = reload_ok_;
        operational.config_reload_success_timestamp = reload_success_timestamp_;
    }
    return operational;
}

http::Health Daemon::health() const
{
    const std::uint64_t since_loop = clock::monotonic_ns() - loop_->last_iteration_ns();
    if (since_loop > 5'000'000'000ull)
        return {false, "the event loop has not run for " + std::to_string(since_loop / 1'000'000'000ull) + "s"};
    std::lock_guard lock(status_mutex_);
    if (unhealthy_.empty()) return {true, ""};
    std::string reason;
    for (const auto& why : unhealthy_) reason += (reason.empty() ? "" : "; ") + why;
    return {false, reason};
}

http::LandingInfo Daemon::landing() const
{
    http::LandingInfo info;
    info.version = std::string(FLOWLAT_VERSION) + " (" + FLOWLAT_REVISION + ")";
    std::lock_guard lock(status_mutex_);
    for (const auto& [name, attached] : probe_attached_)
        if (attached) info.interfaces.push_back(name);
    return info;
}

std::string Daemon::status_line() const
{
    std::lock_guard lock(status_mutex_);
    std::string attached;
    for (const auto& [name, is_attached] : probe_attached_)
        if (is_attached) attached += (attached.empty() ? "" : ",") + name;
    return "probing " + (attached.empty() ? std::string("no interface") : attached) + "; " +
           std::to_string(aggregator_.series_count()) + " series; " + std::to_string(flow_table_entries_) +
           " handshakes pending" + (reload_ok_ ? "" : "; last reload FAILED");
}

} // namespace

int run_config_check(const cli::Options& options)
{
    EffectiveConfig loaded = load_effective_config(options);
    if (!loaded.config) {
        for (const auto& diagnostic : loaded.diagnostics) std::fprintf(stderr, "%s\n", diagnostic.to_string().c_str());
        return 1;
    }
    if (options.web_config_file) {
        const auto web = web::load_web_config(*options.web_config_file);
        if (!web.config) {
            for (const auto& error : web.errors) std::fprintf(stderr, "%s\n", error.c_str());
            return 1;
        }
        std::printf("%s: web configuration is valid\n", options.web_config_file->c_str());
    }
    std::printf("%s: configuration is valid\n", loaded.config->source.c_str());
    return 0;
}

int run_daemon_mode(const cli::Options& options)
{
    EffectiveConfig loaded = load_effective_config(options);
    if (!loaded.config) {
        for (const auto& diagnostic : loaded.diagnostics) std::fprintf(stderr, "%s\n", diagnostic.to_string().c_str());
        std::fprintf(stderr, "flowlatd: invalid configuration, not starting\n");
        return 1;
    }
    logging::set_level(loaded.config->log_level);
    if (auto format = logging::parse_format(loaded.config->log_format)) logging::set_format(*format);
    spdlog::info("flowlatd {} starting with {}", FLOWLAT_VERSION, loaded.config->source);
    Daemon daemon(options, std::move(*loaded.config));
    return daemon.run();
}

} // namespace flowlat
