import type { Area } from "./types";

// The console's accounts: the list (search, balance state) and one account (balance, recharge, ledger …).
const area: Area = {
  app: "console",
  routes: [
    { path: "accounts", name: "accounts", component: () => import("../views/console/accounts/AccountList.vue") },
    {
      path: "accounts/:id",
      name: "account",
      component: () => import("../views/console/accounts/AccountDetail.vue"),
      props: true,
    },
  ],
  nav: [{ to: "accounts", label: "nav.accounts", icon: "accounts", permission: "read", order: 35 }],
};
export default area;
