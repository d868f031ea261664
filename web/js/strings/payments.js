// The ways to pay, as the buyer chooses them, and what card payments can go wrong with.

export default {
  en: {
    "pay.stripe": "Card",
    "pay.manual": "Pay on delivery / bank transfer",
    "pay.test": "Test card (no real money)",
    "pay.stripe_js_failed": "the card form could not be loaded",
    "pay.enter_card": "Enter your card number, expiry date and security code.",
    "pay.check_card": "Check your card details.",
    "pay.bank_refused": "Your bank did not confirm the payment.",
    "pay.cards_unavailable": "Card payments are unavailable right now.",
    "pay.cards_unavailable_why": "Card payments are unavailable right now ({why}).",
    "pay.cards_loading": "Card payments are still loading.",
    "pay.choose": "Choose how to pay.",
  },
  "zh-CN": {
    "pay.stripe": "银行卡",
    "pay.manual": "货到付款 / 银行转账",
    "pay.test": "测试卡（不扣真钱）",
    "pay.stripe_js_failed": "银行卡表单加载失败",
    "pay.enter_card": "请输入卡号、有效期和安全码。",
    "pay.check_card": "请检查银行卡信息。",
    "pay.bank_refused": "你的银行没有确认这笔付款。",
    "pay.cards_unavailable": "暂时无法使用银行卡付款。",
    "pay.cards_unavailable_why": "暂时无法使用银行卡付款（{why}）。",
    "pay.cards_loading": "银行卡付款仍在加载。",
    "pay.choose": "请选择支付方式。",
  },
};
