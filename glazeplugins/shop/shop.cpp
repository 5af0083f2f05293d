// shop: an example REPE plugin written with Glaze, richer than the template
// (templates/glaze-plugin): nested structs and vectors in parameters, in
// results and in members, and both body formats, JSON and BEVE, on every
// endpoint. It serves /shop:
//
//   /shop/catalog        the products (a member: get reads it, set writes it)
//   /shop/orders         the orders placed
//   /shop/find           "SKU" -> the product; throws for an unknown SKU
//   /shop/tagged         "TAG" -> the products with that tag
//   /shop/in_stock       -> the products with stock left
//   /shop/place          an order -> a receipt; throws, and changes nothing,
//                        when a line names an unknown SKU or more than the stock
//   /shop/restock        a line -> adds its quantity to the product's stock

#include <glaze/rpc/repe/plugin_helper.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

struct product
{
   std::string sku;
   std::string name;
   int64_t price_cents{};
   uint32_t stock{};
   std::vector<std::string> tags;
};

struct address
{
   std::string street;
   std::string city;
   std::string country;
};

struct line
{
   std::string sku;
   uint32_t quantity{};
};

struct order
{
   std::string customer;
   address ship_to;
   std::vector<line> lines;
};

struct placed_order
{
   uint64_t id{};
   order details;
   int64_t total_cents{};
};

struct receipt
{
   uint64_t order_id{};
   int64_t total_cents{};
   std::vector<std::string> low_stock; // SKUs with fewer than 3 left
};

struct shop_api
{
   std::vector<product> catalog{
      {"tea-01", "Assam tea, 250 g", 650, 40, {"tea", "black"}},
      {"mug-02", "Stoneware mug", 1200, 4, {"kitchen"}},
      {"pot-03", "Teapot, 1 l", 3400, 0, {"kitchen", "tea"}},
   };
   std::vector<placed_order> orders;

   product find(std::string sku) { return *lookup(sku); }

   std::vector<product> tagged(std::string tag)
   {
      std::vector<product> found;
      std::ranges::copy_if(catalog, std::back_inserter(found),
                           [&](const product& p) { return std::ranges::contains(p.tags, tag); });
      return found;
   }

   std::vector<product> in_stock()
   {
      std::vector<product> found;
      std::ranges::copy_if(catalog, std::back_inserter(found), [](const product& p) { return p.stock > 0; });
      return found;
   }

   receipt place(order o)
   {
      if (o.lines.empty()) {
         throw std::invalid_argument("an order needs at least one line");
      }
      // Check every line before changing anything, so that a refused order
      // leaves the stock as it was.
      int64_t total = 0;
      for (const auto& l : o.lines) {
         const product* p = lookup(l.sku);
         if (l.quantity == 0 || l.quantity > p->stock) {
            throw std::invalid_argument("cannot sell " + std::to_string(l.quantity) + " of " + l.sku + ": " +
                                        std::to_string(p->stock) + " in stock");
         }
         total += p->price_cents * l.quantity;
      }
      receipt r{orders.size() + 1, total, {}};
      for (const auto& l : o.lines) {
         product* p = lookup(l.sku);
         p->stock -= l.quantity;
         if (p->stock < 3) {
            r.low_stock.push_back(p->sku);
         }
      }
      orders.push_back({r.order_id, std::move(o), total});
      return r;
   }

   void restock(line l) { lookup(l.sku)->stock += l.quantity; }

  private:
   product* lookup(const std::string& sku)
   {
      auto it = std::ranges::find(catalog, sku, &product::sku);
      if (it == catalog.end()) {
         throw std::out_of_range("no product " + sku);
      }
      return &*it;
   }
};

template <>
struct glz::meta<shop_api>
{
   using T = shop_api;
   static constexpr auto value = object(&T::catalog, &T::orders, &T::find, &T::tagged, &T::in_stock, &T::place,
                                        &T::restock);
};

namespace
{
   shop_api shop;

   // One registry per body format over the same shop: a request with a BEVE
   // body is answered in BEVE, any other in JSON.
   glz::registry<> json_registry;
   glz::registry<glz::opts{.format = glz::BEVE}> beve_registry;

   // The registries take no locks; the gateway calls from many threads.
   std::mutex mutex;
   std::once_flag once;

   void setup()
   {
      std::call_once(once, [] {
         json_registry.on<glz::root<"/shop">>(shop);
         beve_registry.on<glz::root<"/shop">>(shop);
      });
   }

   bool has_beve_body(const char* request, uint64_t size)
   {
      glz::repe::header h;
      if (size < sizeof(h)) {
         return false;
      }
      std::memcpy(&h, request, sizeof(h));
      return h.body_format == glz::repe::body_format::BEVE;
   }
}

static const repe_plugin_data plugin_info = {"shop", "1.0.0", "/shop"};

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
      glz::repe::plugin_error_response(glz::error_code::parse_error, "internal error");
      const auto& reply = glz::repe::plugin_response_buffer;
      return {reply.data(), reply.size()};
   }
}
}
