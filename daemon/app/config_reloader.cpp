#include "app/config_reloader.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <exception>

namespace flowlat {

Result<std::unique_ptr<ConfigReloader>> ConfigReloader::start(EventLoop& loop, Load load, Apply apply)
{
    UniqueFd done(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!done.valid()) return os_error("create the reload eventfd");
    std::unique_ptr<ConfigReloader> reloader(new ConfigReloader(std::move(load), std::move(apply), std::move(done)));
    ConfigReloader* self = reloader.get();
    if (Status watched = loop.watch(self->done_.get(), [self] { self->finished(); }); !watched)
        return watched.error();
    self->worker_ = std::thread([self] { self->work(); });
    return reloader;
}

ConfigReloader::ConfigReloader(Load load, Apply apply, UniqueFd done)
    : load_(std::move(load)), apply_(std::move(apply)), done_(std::move(done))
{
}

ConfigReloader::~ConfigReloader()
{
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (worker_.joinable()) worker_.join();
}

bool ConfigReloader::request()
{
    if (running_) {
        pending_ = true;
        return false;
    }
    running_ = true;
    {
        std::lock_guard lock(mutex_);
        load_requested_ = true;
    }
    wake_.notify_one();
    return true;
}

void ConfigReloader::work()
{
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return load_requested_ || stopping_; });
            if (stopping_) return;
            load_requested_ = false;
        }
        EffectiveConfig loaded;
        try {
            loaded = load_();
        } catch (const std::exception& e) {
            // Out of memory, most likely: a failed reload, not a dead daemon.
            loaded = EffectiveConfig{std::nullopt, {config::Diagnostic{"reload", 0, 0, "", e.what()}}};
        }
        {
            std::lock_guard lock(mutex_);
            result_ = std::move(loaded);
        }
        const std::uint64_t one = 1;
        while (::write(done_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

void ConfigReloader::finished()
{
    std::uint64_t count = 0;
    if (::read(done_.get(), &count, sizeof(count)) != static_cast<ssize_t>(sizeof(count))) return;
    std::optional<EffectiveConfig> loaded;
    {
        std::lock_guard lock(mutex_);
        loaded.swap(result_);
    }
    if (!loaded) return;
    running_ = false;
    const bool another = pending_;
    pending_ = false;
    apply_(std::move(*loaded), another);
    if (another) request();
}

} // namespace flowlat
