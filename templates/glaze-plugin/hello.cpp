// hello: a REPE plugin written with Glaze, to copy and make yours. It shows
// what an API served through glz::registry can be made of:
//
//   - members, read and written whole: /hello/greeting, /hello/last;
//   - functions, with no parameter and with a struct parameter: /hello/greet;
//   - a function that throws, which Glaze answers with an error: /hello/divide;
//   - every endpoint in BEVE as well as JSON: a request with a BEVE body
//     gets a BEVE reply.

#include <glaze/rpc/repe/plugin_helper.hpp>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

// Structs need no glz::meta: Glaze reflects aggregates field by field, from
// a JSON object or from BEVE.
struct person
{
   std::string name;
   int age{};
};

struct fraction
{
   double numerator{};
   double denominator{};
};

struct hello_api
{
   std::string greeting = "Hello";
   person last{}; // whom greet greeted last
   uint64_t greeted{}; // how many times greet ran

   std::string greet(person p)
   {
      ++greeted;
      last = std::move(p);
      return greeting + ", " + last.name + "!";
   }

   // Glaze answers an exception with ec 5 (parse_error) and the text
   // "registry error for `/hello/divide`: " followed by what().
   double divide(fraction f)
   {
      if (f.denominator == 0) {
         throw std::invalid_argument("division by zero");
      }
      return f.numerator / f.denominator;
   }

   void reset() { *this = {}; }
};

// What the registry serves, each under the root: /hello/greeting, ...
template <>
struct glz::meta<hello_api>
{
   using T = hello_api;
   static constexpr auto value =
      object(&T::greeting, &T::last, &T::greeted, &T::greet, &T::divide, &T::reset);
};

namespace
{
   hello_api api;

   // One registry per body format, over the same API: the body format of a
   // request picks the registry, and so the format of its reply.
   glz::registry<> json_registry;
   glz::registry<glz::opts{.format = glz::BEVE}> beve_registry;

   // A registry takes no locks, and the gateway calls the plugin from many
   // threads at once: calls take turns. Finer locking can come later, where
   // it pays.
   std::mutex mutex;
   std::once_flag once;

   void setup()
   {
      std::call_once(once, [] {
         json_registry.on<glz::root<"/hello">>(api);
         beve_registry.on<glz::root<"/hello">>(api);
      });
   }

   bool has_beve_body(const char* request, uint64_t size)
   {
      glz::repe::header h;
      if (size < sizeof(h)) {
         return false; // the JSON registry answers the broken frame
      }
      std::memcpy(&h, request, sizeof(h));
      return h.body_format == glz::repe::body_format::BEVE;
   }
}

static const repe_plugin_data plugin_info = {"hello", "1.0.0", "/hello"};

// The ABI. No exception may leave these functions: the host is not C++ and
// cannot catch it.
extern "C" {
uint32_t repe_plugin_interface_version() { return REPE_PLUGIN_INTERFACE_VERSION; }

const repe_plugin_data* repe_plugin_info() { return &plugin_info; }

repe_result repe_plugin_init()
{
   try {
      setup();
      return REPE_OK;
   }
   catch (...) {
      return REPE_ERROR_INIT_FAILED;
   }
}

void repe_plugin_shutdown() {}

repe_buffer repe_plugin_call(const char* request, uint64_t size)
{
   try {
      setup();
      std::lock_guard lock{mutex};
      if (has_beve_body(request, size)) {
         return glz::repe::plugin_call(beve_registry, request, size);
      }
      return glz::repe::plugin_call(json_registry, request, size);
   }
   catch (...) {
      // The registry catches what the API throws; this is for the rest,
      // such as running out of memory.
      glz::repe::plugin_error_response(glz::error_code::parse_error, "internal error");
      const auto& reply = glz::repe::plugin_response_buffer;
      return {reply.data(), reply.size()};
   }
}
}
